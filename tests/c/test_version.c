/*
 * test_version: the header's version macros and the library agree.
 *
 *  - WTD_VERSION_STRING is "MAJOR.MINOR.PATCH" spelled from WTD_VERSION_MAJOR/MINOR/PATCH
 *  - wtd_version() of the library linked (the crate version) equals WTD_VERSION_STRING,
 *    so a program built against this header and run against another library build
 *    (or the reverse) is caught
 *  - the macros are usable by the preprocessor (#if), which is what they are for
 *
 * The last line is "N passed, M failed".
 */
#define _POSIX_C_SOURCE 200809L

#include "harness.h"

#if !defined(WTD_VERSION_MAJOR) || !defined(WTD_VERSION_MINOR) || !defined(WTD_VERSION_PATCH)
#error "wtdatagram.h does not define WTD_VERSION_MAJOR/MINOR/PATCH"
#endif
#if WTD_VERSION_MAJOR < 0 || WTD_VERSION_MINOR < 0 || WTD_VERSION_PATCH < 0
#error "negative version component"
#endif

int main(void) {
    harness_begin("test_version", 30);
    char spelled[64];
    snprintf(spelled, sizeof spelled, "%d.%d.%d", (int)WTD_VERSION_MAJOR, (int)WTD_VERSION_MINOR,
             (int)WTD_VERSION_PATCH);
    printf("header %s (%s), library %s\n", WTD_VERSION_STRING, spelled, wtd_version());
    CHECK_STR(WTD_VERSION_STRING, spelled);
    CHECK_STR(wtd_version(), WTD_VERSION_STRING);
    /* A string literal: usable where a constant string is needed. */
    static const char from_macro[] = WTD_VERSION_STRING;
    CHECK(strlen(from_macro) == strlen(spelled));
    return harness_finish();
}
