//! Every diagnostic code anklume emits, with a stable kebab-case name and a
//! one-line summary. `docs/errors.md` documents each one; a golden test
//! checks that every code here has a golden case and that no other code is
//! emitted.

/// One diagnostic code.
#[derive(Clone, Copy, Debug)]
pub struct Code {
    /// The code, e.g. `E0202`.
    pub code: &'static str,
    /// Stable kebab-case name.
    pub name: &'static str,
    /// What it means.
    pub summary: &'static str,
}

macro_rules! codes {
    ($($code:literal $name:literal $summary:literal;)*) => {
        /// All codes, in order.
        pub const CODES: &[Code] = &[$(Code { code: $code, name: $name, summary: $summary }),*];
    };
}

codes! {
    "E0101" "yaml-syntax" "The file is not valid YAML.";
    "E0102" "duplicate-key" "A mapping has the same key twice.";
    "E0103" "yaml-limits" "Aliases expand too much or nesting is too deep (a YAML bomb).";
    "E0104" "yaml-unsupported" "A YAML feature anklume does not accept: several documents, custom tags, a bad merge key.";
    "E0105" "empty-file" "The infra file is empty.";
    "E0106" "source-layout" "The sources cannot be located: both infra.yml and infra/, or infra/ without base.yml.";
    "E0201" "unknown-key" "A key anklume does not know (often a typo).";
    "E0202" "wrong-type" "A value has the wrong type (a string where a boolean is expected, a boolean used as a number, an unquoted base_subnet).";
    "E0203" "missing-key" "A required key is missing.";
    "E0204" "not-allowed-value" "A value is not one of the allowed words.";
    "E0205" "out-of-range" "A number is outside its allowed range.";
    "E0206" "invalid-name" "A domain, machine, volume, profile or device name breaks the naming rule (Incus's rules for profiles and devices).";
    "E0207" "not-absolute-path" "A path must be absolute.";
    "E0208" "invalid-format" "A value has the wrong format (cron schedule, duration, percentage, size, base_subnet).";
    "E0209" "control-character" "A name, key, image alias or reference contains a control character.";
    "E0210" "unknown-incus-key" "A config key or device option Incus does not know (often a typo, such as limits.cpus).";
    "E0301" "duplicate-machine" "Two machines have the same name (names are global).";
    "E0302" "unknown-reference" "A policy, volume consumer or setting names a domain or machine that does not exist.";
    "E0303" "unknown-profile" "A machine uses a profile its domain does not define.";
    "E0304" "reserved-device-prefix" "A user device is named sv-* or pd-*, prefixes reserved for generated devices.";
    "E0305" "duplicate-mount-path" "Two volumes are mounted at the same path in one machine.";
    "E0306" "reserved-name" "A name Ansible, anklume or Incus reserves: a domain or machine named all, ungrouped, localhost, host or a number; a profile named firewall-multi-nic; a volume device named eth0, root, sv-*, pd-* or like a device of its machine.";
    "E0307" "machine-named-like-domain" "A machine has the name of a domain.";
    "E0308" "name-too-long" "A name anklume derives (instance, device) is over Incus's 63-character limit.";
    "E0401" "subnet-id-taken" "Two domains claim the same subnet_id.";
    "E0402" "missing-subnet-id" "Legacy addressing needs a subnet_id on every domain.";
    "E0403" "ip-outside-subnet" "A machine's address is outside its domain's subnet.";
    "E0404" "duplicate-ip" "Two machines have the same address.";
    "E0405" "invalid-ip" "An address is malformed, or is the network, gateway or broadcast address.";
    "E0406" "zone-out-of-range" "Zone addressing computes an octet past 255.";
    "E0407" "out-of-static-ips" "A domain has no free address left in .1-.99.";
    "E0408" "bridge-name-too-long" "The domain's bridge name is longer than Linux's 15 characters.";
    "E0409" "host-subnet-conflict" "A domain's subnet overlaps a host interface's network.";
    "E0501" "empty-port-list" "A network policy lists no ports.";
    "E0502" "gpu-exclusive" "More than one instance has GPU access under the exclusive GPU policy.";
    "E0503" "ai-access-exclusive" "The exclusive AI access policy is incomplete or opened more than once.";
    "E0504" "privileged-lxc" "A privileged container without a VM boundary in the nesting chain.";
    "E0505" "firewall-vm-without-anklume" "firewall_mode: vm needs an anklume domain to host the firewall VM.";
    "E0506" "resource-overcommit" "The machines' CPU or memory limits exceed what the host can give.";
    "E0507" "icmp-with-ports" "A network policy with protocol icmp lists ports (ICMP has none).";
    "W0101" "domain-override" "A domains/*.yml file redefines a domain defined earlier.";
    "W0401" "ip-in-dhcp-range" "A machine's static address is in its bridge's DHCP range (.100-.199).";
    "W0501" "yolo-privileged" "A privileged container accepted because yolo mode is on.";
    "W0502" "gpu-shared" "Several instances share the GPU under the shared GPU policy.";
    "W0503" "disabled-domain-reference" "A network policy names a disabled domain.";
    "W0504" "profiles-without-default" "A machine's profiles omit default, so it gets no NIC and no root disk.";
    "W0505" "host-resources-unknown" "Host CPU and memory could not be read: no resource allocation.";
    "W0506" "host-reserve-too-large" "The host reserve leaves nothing to allocate.";
    "W0507" "overcommit-allowed" "Limits exceed the host, accepted because overcommit is true.";
    "I0001" "openclaw-auto-created" "A <domain>-openclaw machine was added.";
    "I0002" "firewall-auto-created" "The anklume-firewall VM was added.";
    "I0003" "ai-policy-auto-created" "A network policy to ai-tools was added.";
}

/// Look a code up.
pub fn lookup(code: &str) -> Option<&'static Code> {
    CODES.iter().find(|c| c.code == code)
}
