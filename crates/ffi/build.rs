//! Gives the shared library an ELF SONAME, `libwtdatagram.so.<major>`, so that programs
//! linked against it record that name (not the path they were built against) and a
//! later, compatible build of the same major version can replace the file. cargo has
//! no setting for it; this is the one link argument cargo-c would add (see README
//! "Install": cargo-c itself costs more CI time than it saves). The major comes from
//! the crate version, like `WTD_VERSION_MAJOR`.
fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    let os = std::env::var("CARGO_CFG_TARGET_OS").unwrap_or_default();
    let major =
        std::env::var("CARGO_PKG_VERSION_MAJOR").expect("cargo sets CARGO_PKG_VERSION_MAJOR");
    // ELF platforms; macOS names its dylibs differently (install_name), Windows has no
    // SONAME: neither is a target of this project today.
    if matches!(
        os.as_str(),
        "linux"
            | "android"
            | "freebsd"
            | "netbsd"
            | "openbsd"
            | "dragonfly"
            | "illumos"
            | "solaris"
    ) {
        println!("cargo::rustc-cdylib-link-arg=-Wl,-soname,libwtdatagram.so.{major}");
    }
}
