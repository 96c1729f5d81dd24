//! A scratch directory per open store: `tmp/scratch.<pid>.<nonce>/`, made
//! on first use and shared by every clone of the [`Store`], with values
//! shared the same way ([`Store::shared`]). A build lays out what its
//! nodes read (upstream folders) there once instead of once per node.
//!
//! The directory is flocked by its maker, so gc and verify leave it alone
//! while the store is open; it is removed when the last clone of the
//! store is dropped, or swept as debris after a kill.

use std::any::Any;
use std::collections::HashMap;
use std::fs::{self, File};
use std::io;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::Store;
use super::fsutil::{remove_tree, unique_suffix};
use super::lock::{IdleLockFiles, same_file};

type Shared = Arc<dyn Any + Send + Sync>;

/// What must be done when a build releases its store, beyond freeing
/// memory (see [`Store::on_release`]).
type ReleaseHook = Box<dyn FnOnce() + Send>;

/// Set in a process that ends with its one build (a build `admf serve`
/// forked): a released store's shared values are left to the process's
/// end instead of freed one by one. Freeing them is most of the cost of
/// a release after a node read ten thousand upstream folders (every
/// block freed in memory the process shares with its parent is a page
/// copied first), and it delays the build's answer.
static PROCESS_ENDS_WITH_BUILD: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

/// Marks this process as one that ends with its build.
pub fn process_ends_with_build() {
    PROCESS_ENDS_WITH_BUILD.store(true, std::sync::atomic::Ordering::Relaxed);
}

pub(crate) struct Scratch {
    tmp: PathBuf,
    dir: Mutex<Option<(PathBuf, File)>>,
    values: Mutex<HashMap<String, Shared>>,
    /// Run by [`Store::release_scratch`] before the values go.
    release_hooks: Mutex<Vec<ReleaseHook>>,
    /// Unlocked descriptions of `locks/keys.ofd` and of each
    /// `locks/paths-<xx>.ofd`, kept open for the store's lifetime (see
    /// [`super::lock`]).
    pub(crate) idle_key_lock_files: Arc<IdleLockFiles>,
    pub(crate) idle_path_lock_files: Arc<Vec<IdleLockFiles>>,
}

fn locked<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Scratch {
    pub(crate) fn new(tmp: PathBuf) -> Scratch {
        Scratch {
            tmp,
            dir: Mutex::new(None),
            values: Mutex::new(HashMap::new()),
            release_hooks: Mutex::new(Vec::new()),
            idle_key_lock_files: Arc::default(),
            idle_path_lock_files: Arc::new(
                (0..super::lock::PATH_LOCK_FILES)
                    .map(|_| IdleLockFiles::default())
                    .collect(),
            ),
        }
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let dir = self
            .dir
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        if let Some((path, lock)) = dir {
            // Removed under the flock, so no sweeper races the removal.
            let _ = remove_tree(&path);
            drop(lock);
        }
    }
}

impl Store {
    /// This open store's scratch directory, made on first use; every clone
    /// of the store gets the same one. What is in it may be read-only
    /// (see [`remove_tree`], which the removal uses).
    pub fn scratch_dir(&self) -> io::Result<PathBuf> {
        let mut dir = locked(&self.scratch.dir);
        if let Some((path, _)) = dir.as_ref() {
            return Ok(path.clone());
        }
        let (path, lock) = loop {
            let path = self
                .scratch
                .tmp
                .join(format!("scratch.{}", unique_suffix()));
            fs::create_dir(&path)?;
            // As for an entry's temp dir: a sweeper that removed the dir
            // between its creation and the lock makes us start over.
            let lock = File::open(&path)?;
            lock.lock()?;
            if same_file(&lock, &path)? {
                break (path, lock);
            }
        };
        *dir = Some((path.clone(), lock));
        Ok(path)
    }

    /// Removes the scratch directory and forgets the shared values, when
    /// a build has finished with them. Called on the coordinator at the
    /// end of a build: a clone of the store still held by a side thread
    /// when the process exits would never be dropped, and its directory
    /// would be left behind as debris. A later use makes a fresh one.
    pub fn release_scratch(&self) {
        let hooks = std::mem::take(&mut *locked(&self.scratch.release_hooks));
        for hook in hooks {
            hook();
        }
        let values = std::mem::take(&mut *locked(&self.scratch.values));
        if PROCESS_ENDS_WITH_BUILD.load(std::sync::atomic::Ordering::Relaxed) {
            std::mem::forget(values);
        } else {
            drop(values);
        }
        let dir = locked(&self.scratch.dir).take();
        if let Some((path, lock)) = dir {
            // Removed under the flock, so no sweeper races the removal.
            let _ = remove_tree(&path);
            drop(lock);
        }
    }

    /// Runs `hook` when the store is released ([`Store::release_scratch`]),
    /// before its shared values go: for a value whose end must do more
    /// than free memory (a file to write), which a process that ends with
    /// its build would otherwise never drop.
    pub fn on_release(&self, hook: impl FnOnce() + Send + 'static) {
        locked(&self.scratch.release_hooks).push(Box::new(hook));
    }

    /// The value named `name` shared by every clone of this open store,
    /// made with `T::default()` on first use. A name is used with one
    /// type only; a clash is a bug and panics.
    pub fn shared<T: Any + Send + Sync + Default>(&self, name: &str) -> Arc<T> {
        let mut values = locked(&self.scratch.values);
        let value = values
            .entry(name.to_string())
            .or_insert_with(|| Arc::new(T::default()))
            .clone();
        value
            .downcast::<T>()
            .unwrap_or_else(|_| panic!("store value `{name}` used with two types"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clones_share_one_dir_and_values_and_the_last_drop_removes_the_dir() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        let clone = store.clone();
        let dir = store.scratch_dir().unwrap();
        assert_eq!(clone.scratch_dir().unwrap(), dir);
        fs::create_dir(dir.join("ro")).unwrap();
        fs::write(dir.join("ro/f"), "x").unwrap();
        let mut perms = fs::metadata(dir.join("ro")).unwrap().permissions();
        perms.set_readonly(true);
        fs::set_permissions(dir.join("ro"), perms).unwrap();
        *store.shared::<Mutex<u32>>("n").lock().unwrap() = 7;
        assert_eq!(*clone.shared::<Mutex<u32>>("n").lock().unwrap(), 7);
        // A live store's scratch dir is not debris.
        assert!(store.sweep_debris(true).unwrap().is_empty());
        assert!(dir.is_dir());
        drop(store);
        assert!(dir.is_dir());
        drop(clone);
        assert!(!dir.exists());
        // Another open store of the same root has its own.
        let other = Store::open(root.path()).unwrap();
        assert_ne!(other.scratch_dir().unwrap(), dir);
    }

    #[test]
    fn releasing_removes_the_dir_while_a_clone_lives_and_a_later_use_makes_a_new_one() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open(root.path()).unwrap();
        // A clone a side thread might still hold when the process exits.
        let held = store.clone();
        let dir = store.scratch_dir().unwrap();
        fs::write(dir.join("f"), "x").unwrap();
        *store.shared::<Mutex<u32>>("n").lock().unwrap() = 7;
        store.release_scratch();
        assert!(!dir.exists());
        assert_eq!(fs::read_dir(root.path().join("tmp")).unwrap().count(), 0);
        assert_eq!(*held.shared::<Mutex<u32>>("n").lock().unwrap(), 0);
        let again = held.scratch_dir().unwrap();
        assert_ne!(again, dir);
        assert!(again.is_dir());
    }

    #[test]
    fn closing_the_shared_stores_removes_their_scratch_dirs() {
        let root = tempfile::tempdir().unwrap();
        let store = Store::open_shared(root.path()).unwrap();
        let dir = store.scratch_dir().unwrap();
        drop(store);
        // The process-wide map still holds the store, and so its dir.
        assert!(dir.is_dir());
        assert_eq!(
            Store::open_shared(root.path())
                .unwrap()
                .scratch_dir()
                .unwrap(),
            dir
        );
        Store::close_shared();
        assert!(!dir.exists());
        assert_eq!(fs::read_dir(root.path().join("tmp")).unwrap().count(), 0);
    }
}
