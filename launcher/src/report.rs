//! The lines `oxwsgi doctor` prints: one `ok` / `WARN` / `FAIL` per check, with a `fix:`
//! line for a problem, and the counts that decide its exit status. Its own file so that
//! the checks (doctor_servers.rs, doctor_app.rs) and doctor.rs all use it from below.

#[derive(Clone, Copy, PartialEq)]
pub enum Status {
    Ok,
    Warn,
    Fail,
    Info,
}

#[derive(Default)]
pub struct Report {
    pub fails: usize,
    pub warns: usize,
}

impl Report {
    pub fn line(&mut self, st: Status, what: &str, fix: Option<&str>) {
        let tag = match st {
            Status::Ok => "ok  ",
            Status::Warn => {
                self.warns += 1;
                "WARN"
            }
            Status::Fail => {
                self.fails += 1;
                "FAIL"
            }
            Status::Info => "    ",
        };
        let mut first = true;
        for l in what.lines() {
            if first {
                println!("{tag}  {l}");
                first = false;
            } else {
                println!("      {l}");
            }
        }
        if let Some(f) = fix {
            println!("      fix: {f}");
        }
    }
}
