//! Reloading the policy from its file: only a valid policy that differs from the one in force is
//! applied, and a rejected one is kept in `health()` for operators to see.

use std::path::Path;

use super::Router;
use crate::policy::{Policy, PolicyError};

/// What a reload did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReloadOutcome {
    /// A new policy is in force.
    Applied {
        /// Its version.
        version: u64,
    },
    /// The file has the content already in force.
    Unchanged,
}

impl Router {
    /// Reads the policy file the router's policy came from again and applies it if it is valid and
    /// different. On error the policy in force stays, and the error is kept in `health()` and sent
    /// as [`super::RouterEvent::PolicyRejected`].
    pub fn reload(&self) -> Result<ReloadOutcome, PolicyError> {
        let source = self.policy().source.clone();
        self.reload_from(Path::new(&source))
    }

    /// Reads `path`, and applies it if it is valid and differs from the policy in force.
    pub fn reload_from(&self, path: &Path) -> Result<ReloadOutcome, PolicyError> {
        match Policy::from_file(path) {
            Ok(policy) => {
                let current = self.policy();
                // an edit to the key file or a certificate is a new policy too
                let same_files = policy.server.files_hash == current.server.files_hash;
                if policy.hash == current.hash && policy.source == current.source && same_files {
                    return Ok(ReloadOutcome::Unchanged);
                }
                Ok(ReloadOutcome::Applied { version: self.apply(policy) })
            }
            Err(e) => {
                self.reject(&e);
                Err(e)
            }
        }
    }
}
