//! Hot reload (feature `watch`): watch the policy file and swap the policy in when a valid edit
//! lands.
//!
//! The watcher watches the file's parent directory and filters by file name, so every way of saving
//! works: in-place write, write-to-temp-then-rename (vim and most editors), delete-and-recreate, and
//! a Kubernetes ConfigMap `..data` symlink swap. Bursts of events are debounced; the file is then
//! parsed, validated and compiled, and only a valid policy is applied. Requests keep the snapshot
//! they started with.

use std::collections::BTreeSet;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use notify::{EventKind, RecursiveMode, Watcher};
use tokio::sync::mpsc;

use super::{ReloadOutcome, Router};

/// Settings of [`Router::watch_with`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WatchOptions {
    /// Quiet time after the last file event before the file is read (editors write in bursts).
    pub debounce: Duration,
}

impl Default for WatchOptions {
    fn default() -> Self {
        WatchOptions { debounce: Duration::from_millis(50) }
    }
}

/// The watch could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WatchError {
    /// The path has no file name or parent directory.
    #[error("cannot watch `{0}`: not a file path")]
    NotAFile(PathBuf),
    /// The OS watcher failed.
    #[error("cannot watch `{path}`: {source}")]
    Notify {
        /// The directory.
        path: PathBuf,
        /// The watcher's error.
        source: notify::Error,
    },
}

/// Keeps a policy file watched; dropping it stops the watching.
#[derive(Debug)]
pub struct PolicyWatcher {
    _watcher: Arc<Mutex<Watched>>,
    task: tokio::task::JoinHandle<()>,
    path: PathBuf,
}

impl PolicyWatcher {
    /// The watched file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for PolicyWatcher {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Router {
    /// Watches the policy file at `path` with the default debounce (50 ms). Must be called inside
    /// a tokio runtime. Keep the returned watcher alive as long as reloads should happen.
    pub fn watch(&self, path: impl AsRef<Path>) -> Result<PolicyWatcher, WatchError> {
        self.watch_with(path, WatchOptions::default())
    }

    /// Watches the policy file at `path`, and the files the policy names (key file, TLS
    /// certificate and key): a change to any of them reloads the policy.
    pub fn watch_with(&self, path: impl AsRef<Path>, options: WatchOptions) -> Result<PolicyWatcher, WatchError> {
        let path = path.as_ref().to_path_buf();
        let (Some(name), Some(dir)) = (path.file_name().map(OsString::from), path.parent()) else {
            return Err(WatchError::NotAFile(path));
        };
        let dir = if dir.as_os_str().is_empty() { PathBuf::from(".") } else { dir.to_path_buf() };
        let (tx, rx) = mpsc::unbounded_channel::<()>();
        // the file names that matter, the policy's own and those of the files it names
        let names = Arc::new(Mutex::new(BTreeSet::from([name, OsString::from("..data")])));
        let filter = names.clone();
        let watcher = notify::recommended_watcher(move |res: notify::Result<notify::Event>| {
            let Ok(event) = res else { return };
            if matches!(event.kind, EventKind::Access(_)) {
                return;
            }
            let names = filter.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            let relevant = event.paths.iter().any(|p| p.file_name().is_some_and(|n| names.contains(n)));
            if relevant {
                let _ = tx.send(());
            }
        })
        .map_err(|source| WatchError::Notify { path: dir.clone(), source })?;
        let watched = Arc::new(Mutex::new(Watched { watcher, dirs: BTreeSet::new(), names }));
        lock(&watched).add_dir(&dir)?;
        let _ = lock(&watched).follow(&self.policy().server.files());
        let router = self.clone();
        let task = tokio::spawn(debounce_and_reload(router, path.clone(), rx, options.debounce, watched.clone()));
        Ok(PolicyWatcher { _watcher: watched, task, path })
    }
}

/// The OS watcher and what it watches.
#[derive(Debug)]
struct Watched {
    watcher: notify::RecommendedWatcher,
    dirs: BTreeSet<PathBuf>,
    names: Arc<Mutex<BTreeSet<OsString>>>,
}

fn lock(w: &Mutex<Watched>) -> std::sync::MutexGuard<'_, Watched> {
    w.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Watched {
    fn add_dir(&mut self, dir: &Path) -> Result<(), WatchError> {
        if self.dirs.contains(dir) {
            return Ok(());
        }
        self.watcher
            .watch(dir, RecursiveMode::NonRecursive)
            .map_err(|source| WatchError::Notify { path: dir.to_path_buf(), source })?;
        self.dirs.insert(dir.to_path_buf());
        Ok(())
    }

    /// Also watches `files` (what a policy names: a new key file after a reload, say); whether a
    /// directory was added to the watch.
    fn follow(&mut self, files: &[PathBuf]) -> bool {
        let watched_before = self.dirs.len();
        let mut names = Vec::new();
        for file in files {
            names.extend(file.file_name().map(OsString::from));
            // a directory not made yet: watch the nearest one that is, for the name of the next
            // (its creation brings a reload, which then watches further down)
            let mut dir = file.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
            while !dir.is_dir() {
                names.extend(dir.file_name().map(OsString::from));
                match dir.parent() {
                    Some(p) if !p.as_os_str().is_empty() => dir = p,
                    _ => {
                        dir = Path::new(".");
                        break;
                    }
                }
            }
            if let Err(e) = self.add_dir(dir) {
                tracing::warn!("{e}: changes to {} will need a reload (SIGHUP)", file.display());
            }
        }
        self.names.lock().unwrap_or_else(std::sync::PoisonError::into_inner).extend(names);
        self.dirs.len() > watched_before
    }
}

async fn debounce_and_reload(
    router: Router,
    path: PathBuf,
    mut rx: mpsc::UnboundedReceiver<()>,
    debounce: Duration,
    watched: Arc<Mutex<Watched>>,
) {
    let router = Arc::new(router);
    while rx.recv().await.is_some() {
        // wait until the burst is over
        loop {
            match tokio::time::timeout(debounce, rx.recv()).await {
                Ok(Some(())) => continue,
                Ok(None) => return,
                Err(_) => break,
            }
        }
        if !path.exists() {
            tracing::warn!(path = %path.display(), "policy file is gone; keeping the policy in force");
            continue;
        }
        loop {
            let r = router.clone();
            let p = path.clone();
            // file I/O and compilation off the async threads
            let outcome = tokio::task::spawn_blocking(move || r.reload_from(&p)).await;
            match outcome {
                Ok(Ok(ReloadOutcome::Applied { version })) => {
                    tracing::info!(version, "policy reloaded");
                    let _ = lock(&watched).follow(&router.policy().server.files());
                }
                Ok(Ok(ReloadOutcome::Unchanged)) => tracing::debug!("policy file touched, content unchanged"),
                Ok(Err(e)) => {
                    tracing::error!("policy edit rejected: {e}");
                    // the edit may name a file not written yet: its arrival must bring the reload.
                    // A directory watched only now may have got the file before the watch did:
                    // read once more (each round watches one more directory, so this ends)
                    if lock(&watched).follow(&crate::policy::referenced_files(&path)) {
                        continue;
                    }
                }
                Err(e) => tracing::error!("policy reload task failed: {e}"),
            }
            break;
        }
    }
}
