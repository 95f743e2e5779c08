//! The library version as C preprocessor macros: `WTD_VERSION_MAJOR`, `_MINOR` and
//! `_PATCH` from the constants here, and `WTD_VERSION_STRING` ("MAJOR.MINOR.PATCH"),
//! which the preprocessor builds from them (cbindgen.toml `after_includes`: cbindgen
//! exports only numeric literals, no strings). The crate version (`version` in the
//! workspace Cargo.toml) is the single source of truth: the assertions below fail the
//! build the moment these numbers differ from it, and `wtd_version()` returns it
//! (tests/c/test_version.c checks that the library and the header agree).

/// Major version of the library this header belongs to (semver). The shared library's
/// SONAME is `libwtdatagram.so.<major>`.
pub const WTD_VERSION_MAJOR: u32 = 0;
/// Minor version of the library this header belongs to (semver).
pub const WTD_VERSION_MINOR: u32 = 1;
/// Patch version of the library this header belongs to (semver).
pub const WTD_VERSION_PATCH: u32 = 0;

/// Parses a decimal number at compile time (a `CARGO_PKG_VERSION_*` value).
const fn parse_u32(s: &str) -> u32 {
    let b = s.as_bytes();
    assert!(!b.is_empty(), "empty version component");
    let mut i = 0;
    let mut n: u32 = 0;
    while i < b.len() {
        assert!(b[i].is_ascii_digit(), "version component is not a number");
        n = n * 10 + (b[i] - b'0') as u32;
        i += 1;
    }
    n
}

// Bumping the crate version without these constants (or the reverse) fails the build:
// update the three constants above, then regenerate the header.
const _: () = assert!(
    WTD_VERSION_MAJOR == parse_u32(env!("CARGO_PKG_VERSION_MAJOR")),
    "WTD_VERSION_MAJOR differs from the crate version"
);
const _: () = assert!(
    WTD_VERSION_MINOR == parse_u32(env!("CARGO_PKG_VERSION_MINOR")),
    "WTD_VERSION_MINOR differs from the crate version"
);
const _: () = assert!(
    WTD_VERSION_PATCH == parse_u32(env!("CARGO_PKG_VERSION_PATCH")),
    "WTD_VERSION_PATCH differs from the crate version"
);
