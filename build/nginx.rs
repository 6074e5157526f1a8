//! nginx: configured header tree, C shim (ngx-module/) and bindings. See docs/build.md.

pub fn build() {
    panic!("the nginx module is not built yet (issue 3)");
}
