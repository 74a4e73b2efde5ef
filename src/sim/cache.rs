//! The simulated providers' prompt caches, as each provider bills them: a prefix is written to
//! the cache by the first request that sends it and read by the ones after, per model.
//!
//! - Anthropic caches what a request marks: everything up to its last `cache_control`. The first
//!   request with that prefix reports it as `cache_creation_input_tokens` (billed at the cache
//!   write price), the next ones as `cache_read_input_tokens`.
//! - OpenAI caches by itself: a prompt of 1,024 tokens or more is cached in 128-token blocks, and
//!   a later prompt starting with the same blocks reports them as `cached_tokens` (at least
//!   1,024 of them); there is no write charge.

use std::collections::HashSet;
use std::sync::Mutex;

use super::answer::{Answer, Prompt};
use crate::provider::Protocol;
use crate::stable_hash::StableHash;
use crate::sync::lock;

/// The smallest prompt OpenAI caches, in tokens.
const OPENAI_MIN_TOKENS: u64 = 1024;
/// OpenAI's cache block, in tokens (four characters each here).
const OPENAI_BLOCK_TOKENS: u64 = 128;
/// Prefixes kept before the cache starts over (a simulator that runs for days stays bounded).
const MAX_ENTRIES: usize = 100_000;

/// The prefixes cached so far: hashes of (model, prefix).
#[derive(Debug, Default)]
pub(crate) struct PromptCache(Mutex<HashSet<u64>>);

impl PromptCache {
    /// What `answer` reads from the cache and writes to it, for `prompt` on `protocol`.
    pub(crate) fn apply(&self, protocol: Protocol, prompt: &Prompt, answer: &mut Answer) {
        let anthropic = protocol == Protocol::Anthropic;
        // most requests have nothing to cache: they take no lock
        if (anthropic && prompt.cached_chars == 0) || (!anthropic && answer.input_tokens < OPENAI_MIN_TOKENS) {
            return;
        }
        let mut seen = lock(&self.0);
        if seen.len() > MAX_ENTRIES {
            seen.clear();
        }
        let mut key = StableHash::default();
        key.field(prompt.model.as_bytes());
        let (read, written) = if anthropic {
            let end = prompt.text.char_indices().nth(prompt.cached_chars).map_or(prompt.text.len(), |(i, _)| i);
            let tokens = (prompt.cached_chars as u64).div_ceil(4);
            if seen.insert(key.field(&prompt.text.as_bytes()[..end]).finish()) { (0, tokens) } else { (tokens, 0) }
        } else {
            // each leading run of whole blocks: cached as far as they were seen
            let block = (OPENAI_BLOCK_TOKENS * 4) as usize;
            let mut starts: Vec<usize> = prompt.text.char_indices().map(|(i, _)| i).step_by(block).collect();
            if prompt.text.chars().count().is_multiple_of(block) {
                starts.push(prompt.text.len()); // the last block is whole too
            }
            let (mut read, mut hit) = (0, true);
            for pair in starts.windows(2) {
                hit &= !seen.insert(key.field(&prompt.text.as_bytes()[pair[0]..pair[1]]).finish());
                if hit {
                    read += OPENAI_BLOCK_TOKENS;
                }
            }
            (if read >= OPENAI_MIN_TOKENS { read } else { 0 }, 0)
        };
        answer.cached_tokens = read.min(answer.input_tokens);
        answer.cache_write_tokens = written.min(answer.input_tokens - answer.cached_tokens);
    }
}
