//! Releasing a DHCP lease on an Incus bridge, as its client would.
//!
//! An instance keeps the address dnsmasq leased it until its lease ends,
//! even after its NIC's `ipv4.address` changed and after it stopped
//! (Incus 6.0 clears leases only when a NIC or an instance is removed;
//! systemd-networkd sends no release when it stops; measured). dnsmasq
//! never hands a leased address to another client, so an instance taking
//! that address over would get a dynamic one. Apply and rollback move
//! addresses, so they release the old lease of each instance that gives
//! one up, once it is stopped: a DHCPRELEASE with its MAC, sent from the
//! host on the bridge to the bridge's dnsmasq (needs root, as apply does).
//! It carries no client identifier: dnsmasq then finds the lease by MAC,
//! whatever identifier the client leased with (its MAC, or a DUID, as
//! systemd-networkd's default is). The message is one fixed BOOTP packet;
//! the crate made for DHCP messages (dhcproto) pulls 73 crates with a DNS
//! library for it.

use std::net::{Ipv4Addr, UdpSocket};
use std::os::fd::AsRawFd;

/// The DHCPRELEASE message (RFC 2131) for the client `mac` holding `ip`,
/// to the server `server`.
pub fn release_message(server: Ipv4Addr, mac: [u8; 6], ip: Ipv4Addr) -> Vec<u8> {
    let mut m = vec![0u8; 236];
    m[0] = 1; // BOOTREQUEST
    m[1] = 1; // Ethernet
    m[2] = 6; // hardware address length
    m[4..8].copy_from_slice(&u32::from_be_bytes([mac[2], mac[3], mac[4], mac[5]]).to_be_bytes());
    m[12..16].copy_from_slice(&ip.octets()); // ciaddr
    m[28..34].copy_from_slice(&mac); // chaddr
    m.extend_from_slice(&[99, 130, 83, 99]); // magic cookie
    m.extend_from_slice(&[53, 1, 7]); // message type: DHCPRELEASE
    m.push(54); // server identifier
    m.push(4);
    m.extend_from_slice(&server.octets());
    m.push(255); // end
    m
}

/// Parse `aa:bb:cc:dd:ee:ff`.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let parts: Vec<u8> = s
        .split(':')
        .map(|p| u8::from_str_radix(p, 16).ok())
        .collect::<Option<Vec<u8>>>()?;
    parts.try_into().ok()
}

/// Send the release of `ip` held by `mac` to the dnsmasq of `bridge` (at
/// `server`), through the bridge.
pub fn release(bridge: &str, server: Ipv4Addr, mac: [u8; 6], ip: Ipv4Addr) -> std::io::Result<()> {
    let sock = UdpSocket::bind((Ipv4Addr::UNSPECIFIED, 0))?;
    let name = std::ffi::CString::new(bridge)
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let bytes = name.as_bytes_with_nul();
    // SAFETY: a valid socket and a NUL-terminated name with its length.
    let r = unsafe {
        libc::setsockopt(
            sock.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_BINDTODEVICE,
            bytes.as_ptr().cast(),
            bytes.len() as libc::socklen_t,
        )
    };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    sock.send_to(&release_message(server, mac, ip), (server, 67))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_release_names_the_client_its_address_and_the_server() {
        let mac = parse_mac("10:66:6a:cd:c8:43").unwrap();
        let m = release_message(
            Ipv4Addr::new(10, 1, 0, 254),
            mac,
            Ipv4Addr::new(10, 1, 0, 7),
        );
        assert_eq!(m.len(), 236 + 4 + 3 + 6 + 1);
        assert_eq!(&m[12..16], &[10, 1, 0, 7]);
        assert_eq!(&m[28..34], &mac);
        assert_eq!(&m[236..240], &[99, 130, 83, 99]);
        assert_eq!(&m[240..243], &[53, 1, 7]);
        assert_eq!(&m[243..249], &[54, 4, 10, 1, 0, 254]);
        assert_eq!(m[249], 255, "no client identifier: dnsmasq matches the MAC");
        assert_eq!(parse_mac("10:66:6a:cd:c8"), None);
        assert_eq!(parse_mac("zz:66:6a:cd:c8:43"), None);
    }
}
