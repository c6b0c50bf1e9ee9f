//! Sharding: which consumer groups this replica owns when several replicas split a cluster's groups.

use serde::Deserialize;

/// This replica's share of the groups: a group belongs to shard FNV-1a-64(group id) mod `count`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(
    default,
    deny_unknown_fields,
    expecting = "a mapping with index and count"
)]
pub struct ShardConfig {
    /// In `0..count`.
    pub index: u64,
    /// At least 1.
    pub count: u64,
}

impl ShardConfig {
    /// Whether this replica owns `group`: FNV-1a-64 of the group id, mod `count`, is `index`.
    pub fn owns(&self, group: &str) -> bool {
        fnv1a_64(group.as_bytes()) % self.count.max(1) == self.index
    }
}

/// FNV-1a, 64-bit: small, stable across versions and platforms, so every replica agrees.
fn fnv1a_64(bytes: &[u8]) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    bytes.iter().fold(OFFSET_BASIS, |hash, b| {
        (hash ^ u64::from(*b)).wrapping_mul(PRIME)
    })
}

impl Default for ShardConfig {
    fn default() -> Self {
        ShardConfig { index: 0, count: 1 }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_groups_by_fnv1a_64() {
        // Published FNV-1a-64 test vectors.
        assert_eq!(fnv1a_64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a_64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a_64(b"foobar"), 0x8594_4171_f739_67e8);
        let shards: Vec<ShardConfig> = (0..3)
            .map(|index| ShardConfig { index, count: 3 })
            .collect();
        for group in ["billing", "search", "a", "", "payments-v2"] {
            let owners = shards.iter().filter(|s| s.owns(group)).count();
            assert_eq!(owners, 1, "{group:?} belongs to exactly one shard");
        }
        assert!(
            ShardConfig::default().owns("anything"),
            "one shard owns every group"
        );
        // "a" hashes to ...ec8c, which is even: shard 0 of 2.
        assert!(ShardConfig { index: 0, count: 2 }.owns("a"));
    }
}
