//! A hash whose value never changes: FNV-1a over explicitly written bytes (length-prefixed
//! fields, little-endian integers), with none of std's `Hash` impls in between. Routers of a fleet
//! built by different toolchains, on any platform, must agree on it (prompt-cache affinity sends a
//! prefix to the same target from every router); std's `DefaultHasher` and `Hash` impls promise
//! no such thing.

use std::hash::Hasher;

/// The hash being written.
#[derive(Default)]
pub(crate) struct StableHash(fnv::FnvHasher);

impl StableHash {
    /// One field: its length, then its bytes (so that no two sequences of fields collide by
    /// where one ends).
    pub(crate) fn field(&mut self, bytes: &[u8]) -> &mut Self {
        self.0.write(&(bytes.len() as u64).to_le_bytes());
        self.0.write(bytes);
        self
    }

    /// One integer.
    pub(crate) fn u64(&mut self, n: u64) -> &mut Self {
        self.0.write(&n.to_le_bytes());
        self
    }

    /// The value, mixed so that every bit depends on every input bit (FNV alone mixes its low
    /// bits poorly): SplitMix64's finalizer, a bijection.
    pub(crate) fn finish(&self) -> u64 {
        let mut z = self.0.finish();
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_are_pinned_and_fields_do_not_run_together() {
        // pinned: a change here splits a fleet's prompt-cache affinity during a rollout
        assert_eq!(StableHash::default().field(b"openai").u64(7).finish(), 10_162_862_981_346_647_956);
        let ab_c = StableHash::default().field(b"ab").field(b"c").finish();
        let a_bc = StableHash::default().field(b"a").field(b"bc").finish();
        assert_ne!(ab_c, a_bc);
    }
}
