/*
 * test_transcode: wtd_serializer_transcode, one serialized value from one structured
 * format to another through the library's serializers (no runtime, no network).
 *
 *  A. bad arguments: enum values that are no wtd_serializer, NULL data/out/out_len ->
 *     WTD_ERR_INVALID_ARGUMENT with a message
 *  B. the output buffer: a size query (NULL, 0), a buffer one byte short (untouched,
 *     WTD_ERR_BUFFER_TOO_SMALL, *out_len = the size needed), the exact size
 *  C. the byte vectors written by real Python (json.dumps, msgpack-python's packb):
 *     bindings/go/testdata/structured_vectors.json, shared with the Rust and Go tests.
 *     Every vector's MessagePack goes to MessagePack, JSON and compact JSON; a
 *     JSON-sourced vector's input text goes to all three too.
 *  D. input that does not decode -> WTD_ERR_INVALID_DATA; a value JSON cannot carry
 *     (an array as a map key) -> WTD_ERR_INVALID_ARGUMENT; MessagePack to MessagePack
 *     is packb's form (a float 32 widened, a non-minimal integer made minimal)
 *
 * The last line is "N passed, M failed".
 */
#define _POSIX_C_SOURCE 200809L
#define HARNESS_STRICT_LAST_ERROR 1
#include "harness.h"

#ifndef WTD_VECTORS
#error "WTD_VECTORS must name bindings/go/testdata/structured_vectors.json"
#endif

#define CHECK_BYTES(buf, len, want, want_len) \
    check_impl((len) == (want_len) && memcmp((buf), (want), (want_len)) == 0, \
               #buf " == " #want, __FILE__, __LINE__)

static const wtd_serializer FORMATS[3] = {WTD_SERIALIZER_MSGPACK, WTD_SERIALIZER_JSON,
                                          WTD_SERIALIZER_JSON_COMPACT};

/* ------------------------------------------------------------------------------------ */
/* A tiny reader of the vectors file: an object whose "vectors" member is an array of  */
/* objects whose members are all strings.                                               */

#define MAX_VECTORS 64
#define MAX_FIELD 4096

typedef struct {
    char name[64];
    char input[MAX_FIELD];
    char json[MAX_FIELD];
    char json_compact[MAX_FIELD];
    char msgpack_hex[MAX_FIELD];
    int has_input, has_json;
} vector_t;

static vector_t g_vectors[MAX_VECTORS];
static int g_nvectors;

static void put_utf8(char **o, const char *end, unsigned long c) {
    char b[4];
    int n;
    if (c < 0x80) {
        b[0] = (char)c;
        n = 1;
    } else if (c < 0x800) {
        b[0] = (char)(0xc0 | c >> 6);
        b[1] = (char)(0x80 | (c & 0x3f));
        n = 2;
    } else if (c < 0x10000) {
        b[0] = (char)(0xe0 | c >> 12);
        b[1] = (char)(0x80 | (c >> 6 & 0x3f));
        b[2] = (char)(0x80 | (c & 0x3f));
        n = 3;
    } else {
        b[0] = (char)(0xf0 | c >> 18);
        b[1] = (char)(0x80 | (c >> 12 & 0x3f));
        b[2] = (char)(0x80 | (c >> 6 & 0x3f));
        b[3] = (char)(0x80 | (c & 0x3f));
        n = 4;
    }
    if (*o + n < end) {
        memcpy(*o, b, (size_t)n);
        *o += n;
    }
}

static unsigned long hex4(const char *p) {
    char t[5] = {p[0], p[1], p[2], p[3], 0};
    return strtoul(t, NULL, 16);
}

/* Decodes the JSON string starting after its opening quote at *pp into out (NUL-
 * terminated); leaves *pp after the closing quote. 0 on malformed input. */
static int read_string(const char **pp, char *out, size_t cap) {
    const char *p = *pp;
    char *o = out, *end = out + cap - 1;
    while (*p && *p != '"') {
        if (*p != '\\') {
            if (o < end) *o++ = *p;
            p++;
            continue;
        }
        p++;
        switch (*p) {
        case 'n': put_utf8(&o, end, '\n'); break;
        case 't': put_utf8(&o, end, '\t'); break;
        case 'r': put_utf8(&o, end, '\r'); break;
        case 'b': put_utf8(&o, end, '\b'); break;
        case 'f': put_utf8(&o, end, '\f'); break;
        case 'u': {
            unsigned long c = hex4(p + 1);
            p += 4;
            if (c >= 0xd800 && c < 0xdc00 && p[1] == '\\' && p[2] == 'u') {
                c = 0x10000 + ((c - 0xd800) << 10) + (hex4(p + 3) - 0xdc00);
                p += 6;
            }
            put_utf8(&o, end, c);
            break;
        }
        case '\0': return 0;
        default: put_utf8(&o, end, (unsigned char)*p); break; /* \" \\ \/ */
        }
        p++;
    }
    if (*p != '"') return 0;
    *o = 0;
    *pp = p + 1;
    return 1;
}

/* Copies src into dst[cap]; 0 if it does not fit. */
static int copy_field(char *dst, size_t cap, const char *src) {
    size_t n = strlen(src);
    if (n >= cap) return 0;
    memcpy(dst, src, n + 1);
    return 1;
}

static int load_vectors(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return 0;
    static char text[1 << 17];
    size_t n = fread(text, 1, sizeof text - 1, f);
    fclose(f);
    text[n] = 0;
    int depth = 0, expect_key = 1;
    char key[64];
    static char value[MAX_FIELD];
    for (const char *p = text; *p;) {
        char c = *p++;
        if (c == '{' || c == '[') {
            depth++;
            expect_key = 1;
            if (depth == 3) {
                if (g_nvectors == MAX_VECTORS) return 0;
                memset(&g_vectors[g_nvectors++], 0, sizeof(vector_t));
            }
        } else if (c == '}' || c == ']') {
            depth--;
        } else if (c == ',') {
            expect_key = 1;
        } else if (c == '"') {
            if (expect_key) {
                if (!read_string(&p, key, sizeof key)) return 0;
                expect_key = 0;
                continue;
            }
            if (!read_string(&p, value, sizeof value)) return 0;
            if (depth != 3) continue; /* "about" */
            vector_t *v = &g_vectors[g_nvectors - 1];
            int ok = 1;
            if (strcmp(key, "name") == 0) {
                ok = copy_field(v->name, sizeof v->name, value);
            } else if (strcmp(key, "input") == 0) {
                ok = copy_field(v->input, sizeof v->input, value);
                v->has_input = 1;
            } else if (strcmp(key, "json") == 0) {
                ok = copy_field(v->json, sizeof v->json, value);
                v->has_json = 1;
            } else if (strcmp(key, "json_compact") == 0) {
                ok = copy_field(v->json_compact, sizeof v->json_compact, value);
            } else if (strcmp(key, "msgpack") == 0) {
                ok = copy_field(v->msgpack_hex, sizeof v->msgpack_hex, value);
            }
            if (!ok) return 0;
        }
    }
    return depth == 0;
}

static size_t unhex(const char *hex, uint8_t *out, size_t cap) {
    size_t n = strlen(hex) / 2;
    if (n > cap) return 0;
    for (size_t i = 0; i < n; i++) {
        char t[3] = {hex[2 * i], hex[2 * i + 1], 0};
        out[i] = (uint8_t)strtoul(t, NULL, 16);
    }
    return n;
}

/* ------------------------------------------------------------------------------------ */

static wtd_result transcode(wtd_serializer from, wtd_serializer to, const void *data,
                            size_t len, uint8_t *out, size_t cap, size_t *out_len) {
    return wtd_serializer_transcode(from, to, (const uint8_t *)data, len, out, cap, out_len);
}

static void case_a_arguments(void) {
    uint8_t out[16];
    size_t n = 0;
    CHECK_RC(wtd_serializer_transcode((wtd_serializer)7, WTD_SERIALIZER_JSON,
                                      (const uint8_t *)"1", 1, out, sizeof out, &n),
             WTD_ERR_INVALID_ARGUMENT);
    CHECK(strstr(wtd_last_error(), "from") != NULL);
    CHECK_RC(wtd_serializer_transcode(WTD_SERIALIZER_JSON, (wtd_serializer)-1,
                                      (const uint8_t *)"1", 1, out, sizeof out, &n),
             WTD_ERR_INVALID_ARGUMENT);
    CHECK(strstr(wtd_last_error(), "to: -1") != NULL);
    CHECK_RC(transcode(WTD_SERIALIZER_JSON, WTD_SERIALIZER_JSON, NULL, 1, out, sizeof out, &n),
             WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(transcode(WTD_SERIALIZER_JSON, WTD_SERIALIZER_JSON, "1", 1, out, sizeof out, NULL),
             WTD_ERR_INVALID_ARGUMENT);
    CHECK_RC(transcode(WTD_SERIALIZER_JSON, WTD_SERIALIZER_JSON, "1", 1, NULL, 4, &n),
             WTD_ERR_INVALID_ARGUMENT);
    /* NULL data of length 0 is the empty input: not a value. */
    CHECK_RC(transcode(WTD_SERIALIZER_MSGPACK, WTD_SERIALIZER_JSON, NULL, 0, out, sizeof out, &n),
             WTD_ERR_INVALID_DATA);
}

static void case_b_buffer(void) {
    /* {"a": 1.0, "b": b"\xff"} as packb writes it; JSON writes bytes as their values. */
    static const uint8_t mp[] = {0x82, 0xa1, 'a', 0xcb, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0,
                                 0xa1, 'b', 0xc4, 0x01, 0xff};
    static const char want[] = "{\"a\": 1.0, \"b\": [255]}";
    const size_t want_len = sizeof want - 1;
    size_t n = 0;
    CHECK_RC(transcode(WTD_SERIALIZER_MSGPACK, WTD_SERIALIZER_JSON, mp, sizeof mp, NULL, 0, &n),
             WTD_ERR_BUFFER_TOO_SMALL);
    CHECK_U64(n, want_len);
    uint8_t out[64];
    memset(out, 0xaa, sizeof out);
    n = 0;
    CHECK_RC(transcode(WTD_SERIALIZER_MSGPACK, WTD_SERIALIZER_JSON, mp, sizeof mp, out,
                       want_len - 1, &n),
             WTD_ERR_BUFFER_TOO_SMALL);
    CHECK_U64(n, want_len);
    int untouched = 1;
    for (size_t i = 0; i < sizeof out; i++) untouched &= out[i] == 0xaa;
    CHECK(untouched);
    n = 0;
    CHECK_OK(transcode(WTD_SERIALIZER_MSGPACK, WTD_SERIALIZER_JSON, mp, sizeof mp, out, want_len, &n));
    CHECK_BYTES(out, n, want, want_len);
    CHECK(out[want_len] == 0xaa);
}

static const char *format_name(wtd_serializer f) {
    switch (f) {
    case WTD_SERIALIZER_JSON: return "json";
    case WTD_SERIALIZER_MSGPACK: return "msgpack";
    case WTD_SERIALIZER_JSON_COMPACT: return "json_compact";
    }
    return "?";
}

/* Checks from -> every format against the vector's bytes. */
static void check_vector_from(const vector_t *v, wtd_serializer from, const void *data,
                              size_t len, const uint8_t *mp, size_t mp_len) {
    static uint8_t out[MAX_FIELD];
    for (int i = 0; i < 3; i++) {
        wtd_serializer to = FORMATS[i];
        const void *want;
        size_t want_len;
        if (to == WTD_SERIALIZER_MSGPACK) {
            want = mp;
            want_len = mp_len;
        } else if (!v->has_json) {
            continue; /* Python cannot write it as JSON */
        } else {
            want = to == WTD_SERIALIZER_JSON ? v->json : v->json_compact;
            want_len = strlen(want);
        }
        size_t n = 0;
        wtd_result r = transcode(from, to, data, len, out, sizeof out, &n);
        if (!check_impl(r == WTD_OK && n == want_len && memcmp(out, want, n) == 0,
                        "vector transcodes to Python's bytes", __FILE__, __LINE__))
            fprintf(stderr, "  vector %s: %s -> %s: %s, got %.*s\n", v->name, format_name(from),
                    format_name(to), wtd_result_name(r), (int)n, (const char *)out);
    }
}

static void case_c_vectors(void) {
    if (!CHECK(load_vectors(WTD_VECTORS))) return;
    CHECK(g_nvectors >= 12);
    int json_sourced = 0;
    for (int i = 0; i < g_nvectors; i++) {
        const vector_t *v = &g_vectors[i];
        static uint8_t mp[MAX_FIELD];
        size_t mp_len = unhex(v->msgpack_hex, mp, sizeof mp);
        CHECK(v->name[0] != 0 && mp_len > 0);
        check_vector_from(v, WTD_SERIALIZER_MSGPACK, mp, mp_len, mp, mp_len);
        if (v->has_input) {
            json_sourced++;
            check_vector_from(v, WTD_SERIALIZER_JSON, v->input, strlen(v->input), mp, mp_len);
            check_vector_from(v, WTD_SERIALIZER_JSON, v->json, strlen(v->json), mp, mp_len);
            check_vector_from(v, WTD_SERIALIZER_JSON_COMPACT, v->json_compact,
                              strlen(v->json_compact), mp, mp_len);
        }
    }
    CHECK(json_sourced >= 9);
}

static void case_d_errors(void) {
    uint8_t out[64];
    size_t n = 0;
    CHECK_RC(transcode(WTD_SERIALIZER_JSON, WTD_SERIALIZER_MSGPACK, "{nope", 5, out, sizeof out, &n),
             WTD_ERR_INVALID_DATA);
    CHECK_RC(transcode(WTD_SERIALIZER_JSON_COMPACT, WTD_SERIALIZER_JSON, "{} x", 4, out, sizeof out, &n),
             WTD_ERR_INVALID_DATA);
    static const uint8_t trailing[] = {0x01, 0x02};
    CHECK_RC(transcode(WTD_SERIALIZER_MSGPACK, WTD_SERIALIZER_MSGPACK, trailing, 2, out, sizeof out, &n),
             WTD_ERR_INVALID_DATA);
    static const uint8_t ext[] = {0xd4, 0x01, 0x00};
    CHECK_RC(transcode(WTD_SERIALIZER_MSGPACK, WTD_SERIALIZER_JSON, ext, 3, out, sizeof out, &n),
             WTD_ERR_INVALID_DATA);
    /* {[1]: 2}: MessagePack holds it, JSON cannot. */
    static const uint8_t array_key[] = {0x81, 0x91, 0x01, 0x02};
    CHECK_RC(transcode(WTD_SERIALIZER_MSGPACK, WTD_SERIALIZER_JSON, array_key, 4, out, sizeof out, &n),
             WTD_ERR_INVALID_ARGUMENT);
    n = 0;
    CHECK_OK(transcode(WTD_SERIALIZER_MSGPACK, WTD_SERIALIZER_MSGPACK, array_key, 4, out, sizeof out, &n));
    CHECK_BYTES(out, n, array_key, sizeof array_key);
    /* [float32 1.1, uint16 1, str8 "a"] in an array 16 -> packb's form of the same values. */
    static const uint8_t loose[] = {0xdc, 0x00, 0x03, 0xca, 0x3f, 0x8c, 0xcc, 0xcd, 0xcd,
                                    0x00, 0x01, 0xd9, 0x01, 'a'};
    static const uint8_t packb[] = {0x93, 0xcb, 0x3f, 0xf1, 0x99, 0x99, 0xa0, 0x00, 0x00,
                                    0x00, 0x01, 0xa1, 'a'};
    n = 0;
    CHECK_OK(transcode(WTD_SERIALIZER_MSGPACK, WTD_SERIALIZER_MSGPACK, loose, sizeof loose, out,
                       sizeof out, &n));
    CHECK_BYTES(out, n, packb, sizeof packb);
    /* Nesting deeper than 128 is refused, not a crash. */
    static char deep[2 * 200 + 1];
    memset(deep, '[', 200);
    memset(deep + 200, ']', 200);
    CHECK_RC(transcode(WTD_SERIALIZER_JSON, WTD_SERIALIZER_MSGPACK, deep, 400, out, sizeof out, &n),
             WTD_ERR_INVALID_DATA);
}

int main(void) {
    harness_begin("test_transcode", 60);
    fprintf(stderr, "libwtdatagram %s\n", wtd_version());
    case_a_arguments();
    case_b_buffer();
    case_c_vectors();
    case_d_errors();
    return harness_finish();
}
