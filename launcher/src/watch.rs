//! `--reload-on-change`: poll the app's `.py` / `.wsgi` files for changes.

use std::fs;
use std::path::PathBuf;
use std::time::SystemTime;

/// Source files whose change triggers a worker restart with --reload-on-change.
pub struct Watcher {
    pub roots: Vec<PathBuf>,
    skip: PathBuf,
    state: Vec<(PathBuf, Option<SystemTime>)>,
}

impl Watcher {
    pub fn new(roots: Vec<PathBuf>, skip: PathBuf) -> Watcher {
        let mut w = Watcher { roots, skip, state: Vec::new() };
        w.state = w.scan();
        w
    }

    fn scan(&self) -> Vec<(PathBuf, Option<SystemTime>)> {
        let mut out = Vec::new();
        let mut stack: Vec<(PathBuf, u32)> = self.roots.iter().map(|r| (r.clone(), 0)).collect();
        while let Some((d, depth)) = stack.pop() {
            if out.len() > 5000 || d.starts_with(&self.skip) || d.join("pyvenv.cfg").exists() {
                continue;
            }
            let Ok(rd) = fs::read_dir(&d) else { continue };
            for e in rd.flatten() {
                let p = e.path();
                let name = e.file_name().to_string_lossy().into_owned();
                let Ok(ft) = e.file_type() else { continue };
                if ft.is_dir() {
                    if depth < 6 && !name.starts_with('.') && name != "__pycache__" && name != "node_modules" {
                        stack.push((p, depth + 1));
                    }
                } else if name.ends_with(".py") || name.ends_with(".wsgi") {
                    let m = e.metadata().ok().and_then(|m| m.modified().ok());
                    out.push((p, m));
                }
            }
        }
        out.sort();
        out.dedup_by(|a, b| a.0 == b.0);
        out
    }

    /// How many files are watched.
    pub fn files(&self) -> usize {
        self.state.len()
    }

    /// A changed, added or removed file, if any.
    pub fn changed(&mut self) -> Option<PathBuf> {
        let now = self.scan();
        let hit = now
            .iter()
            .find(|n| !self.state.contains(n))
            .map(|n| n.0.clone())
            .or_else(|| self.state.iter().find(|o| !now.iter().any(|n| n.0 == o.0)).map(|o| o.0.clone()));
        self.state = now;
        hit
    }
}
