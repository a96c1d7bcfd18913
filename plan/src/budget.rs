//! A memory budget for decoding `plan.bin`.
//!
//! bincode's own limit (`with_limit`) does not count what serde-driven
//! decoding allocates for sequences and maps, and one encoded byte can become
//! hundreds in memory (an empty node is 7 bytes on disk and a few hundred in
//! memory; a one-entry map allocates a whole B-tree leaf). So the plan types
//! decode their collections through the functions below, which charge the
//! memory each collection takes against a budget set by [`crate::codec::decode`]
//! to a fixed multiple of the body's size. Outside a decode (no budget set),
//! nothing is charged.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;
use std::mem::size_of;

use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

use crate::Config;

thread_local! {
    static LEFT: Cell<Option<usize>> = const { Cell::new(None) };
    static EXCEEDED: Cell<bool> = const { Cell::new(false) };
}

/// Restores the previous budget when dropped.
pub(crate) struct Guard(Option<usize>, bool);

/// Set a budget of `bytes` for this thread until the guard is dropped.
pub(crate) fn enter(bytes: usize) -> Guard {
    Guard(LEFT.replace(Some(bytes)), EXCEEDED.replace(false))
}

impl Guard {
    /// Whether the budget ran out.
    pub(crate) fn exceeded(&self) -> bool {
        EXCEEDED.get()
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        LEFT.set(self.0);
        EXCEEDED.set(self.1);
    }
}

fn charge<E: de::Error>(n: usize) -> Result<(), E> {
    match LEFT.get() {
        None => Ok(()),
        Some(left) if left >= n => {
            LEFT.set(Some(left - n));
            Ok(())
        }
        Some(_) => {
            LEFT.set(Some(0));
            EXCEEDED.set(true);
            Err(E::custom("plan exceeds its decoding memory budget"))
        }
    }
}

/// Charge for `hint` elements of `size` bytes up front when the format
/// announces them, else for each element as it comes; returns the capacity
/// to reserve.
fn reserve<E: de::Error>(hint: Option<usize>, size: usize) -> Result<usize, E> {
    match hint {
        Some(n) => {
            charge(n.saturating_mul(size))?;
            Ok(n)
        }
        None => Ok(0),
    }
}

struct SeqV<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for SeqV<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a sequence")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let size = size_of::<T>().max(1);
        let announced = seq.size_hint();
        let mut v = Vec::with_capacity(reserve(announced, size)?);
        loop {
            if v.len() >= v.capacity() || announced.is_none() {
                charge(size)?;
            }
            match seq.next_element()? {
                Some(x) => v.push(x),
                None => return Ok(v),
            }
        }
    }
}

/// A `Vec<T>`, charged `size_of::<T>()` per element.
pub(crate) fn seq<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<Vec<T>, D::Error> {
    d.deserialize_seq(SeqV(PhantomData))
}

/// Bytes a `BTreeMap<K, V>` of `n` entries is charged: the entries, and one
/// B-tree leaf (11 slots) more, which even a one-entry map allocates.
fn map_cost<K, V>(n: usize) -> usize {
    if n == 0 {
        0
    } else {
        n.saturating_add(11)
            .saturating_mul(size_of::<K>() + size_of::<V>())
    }
}

struct MapV<V>(PhantomData<V>);

impl<'de, V: DeserializeSeed<'de> + Default> Visitor<'de> for MapV<V> {
    type Value = BTreeMap<String, V::Value>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let announced = map.size_hint();
        if let Some(n) = announced {
            charge(map_cost::<String, V::Value>(n))?;
        }
        let mut out = BTreeMap::new();
        loop {
            if announced.is_none() {
                charge(map_cost::<String, V::Value>(1))?;
            }
            let Some(k) = map.next_key::<String>()? else {
                return Ok(out);
            };
            let v = map.next_value_seed(V::default())?;
            out.insert(k, v);
        }
    }
}

/// A config value: a plain string.
#[derive(Default)]
struct Plain;

impl<'de> DeserializeSeed<'de> for Plain {
    type Value = String;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        String::deserialize(d)
    }
}

/// A device's options: a charged config map.
#[derive(Default)]
struct ConfigSeed;

impl<'de> DeserializeSeed<'de> for ConfigSeed {
    type Value = Config;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Config, D::Error> {
        config(d)
    }
}

/// A [`Config`], charged per entry.
pub(crate) fn config<'de, D: Deserializer<'de>>(d: D) -> Result<Config, D::Error> {
    d.deserialize_map(MapV::<Plain>(PhantomData))
}

/// [`crate::Devices`], charged per device and per option.
pub(crate) fn devices<'de, D: Deserializer<'de>>(d: D) -> Result<crate::Devices, D::Error> {
    d.deserialize_map(MapV::<ConfigSeed>(PhantomData))
}
