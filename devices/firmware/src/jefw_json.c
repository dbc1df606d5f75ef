/* Strict recursive-descent JSON parser; see jefw_json.h. */
#include "jefw_json.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 64

typedef struct {
    const char *s;
    size_t n, i;
    char *err;
    size_t errlen;
    int failed;
} parser;

static void fail(parser *p, const char *fmt, ...) {
    va_list ap;
    char msg[160];
    if (p->failed) return;
    p->failed = 1;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (p->err && p->errlen) snprintf(p->err, p->errlen, "invalid JSON at byte %lu: %s", (unsigned long)p->i, msg);
}

static void skip_ws(parser *p) {
    while (p->i < p->n && (p->s[p->i] == ' ' || p->s[p->i] == '\t' || p->s[p->i] == '\n' || p->s[p->i] == '\r'))
        p->i++;
}

static int parse_value(parser *p, json_value *v, int depth);

static int hex4(parser *p, unsigned *out) {
    unsigned v = 0;
    int k;
    if (p->i + 4 > p->n) {
        fail(p, "truncated \\u escape");
        return 0;
    }
    for (k = 0; k < 4; k++) {
        char c = p->s[p->i++];
        v <<= 4;
        if (c >= '0' && c <= '9') v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f') v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F') v |= (unsigned)(c - 'A' + 10);
        else {
            fail(p, "bad hex digit in \\u escape");
            return 0;
        }
    }
    *out = v;
    return 1;
}

/* Length of a valid UTF-8 sequence starting at s (max n bytes), 0 if invalid. */
static size_t utf8_len(const unsigned char *s, size_t n) {
    unsigned c = s[0];
    size_t len, k;
    unsigned cp;
    if (c < 0x80) return 1;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return 0;
    if (len > n) return 0;
    for (k = 1; k < len; k++) {
        if ((s[k] & 0xC0) != 0x80) return 0;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
        return 0;
    return len;
}

static void put_utf8(char *out, size_t *o, unsigned cp) {
    if (cp < 0x80) out[(*o)++] = (char)cp;
    else if (cp < 0x800) {
        out[(*o)++] = (char)(0xC0 | (cp >> 6));
        out[(*o)++] = (char)(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out[(*o)++] = (char)(0xE0 | (cp >> 12));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*o)++] = (char)(0x80 | (cp & 0x3F));
    } else {
        out[(*o)++] = (char)(0xF0 | (cp >> 18));
        out[(*o)++] = (char)(0x80 | ((cp >> 12) & 0x3F));
        out[(*o)++] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[(*o)++] = (char)(0x80 | (cp & 0x3F));
    }
}

static char *parse_string(parser *p, size_t *length) {
    size_t start, o = 0;
    char *out;
    if (p->i >= p->n || p->s[p->i] != '"') {
        fail(p, "expected a string");
        return NULL;
    }
    start = ++p->i;
    /* decoded text is never longer than the source */
    while (p->i < p->n && p->s[p->i] != '"') p->i += (p->s[p->i] == '\\' && p->i + 1 < p->n) ? 2 : 1;
    if (p->i >= p->n) {
        p->i = start;
        fail(p, "unterminated string");
        return NULL;
    }
    out = (char *)malloc(p->i - start + 1);
    if (!out) {
        fail(p, "out of memory");
        return NULL;
    }
    p->i = start;
    while (p->s[p->i] != '"') {
        unsigned char c = (unsigned char)p->s[p->i];
        if (c < 0x20) {
            fail(p, "control character in string");
            free(out);
            return NULL;
        }
        if (c == '\\') {
            char e = p->s[p->i + 1];
            p->i += 2;
            switch (e) {
            case '"': out[o++] = '"'; break;
            case '\\': out[o++] = '\\'; break;
            case '/': out[o++] = '/'; break;
            case 'b': out[o++] = '\b'; break;
            case 'f': out[o++] = '\f'; break;
            case 'n': out[o++] = '\n'; break;
            case 'r': out[o++] = '\r'; break;
            case 't': out[o++] = '\t'; break;
            case 'u': {
                unsigned cp, lo;
                if (!hex4(p, &cp)) {
                    free(out);
                    return NULL;
                }
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (p->i + 6 > p->n || p->s[p->i] != '\\' || p->s[p->i + 1] != 'u') {
                        fail(p, "unpaired surrogate in \\u escape");
                        free(out);
                        return NULL;
                    }
                    p->i += 2;
                    if (!hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) {
                        fail(p, "unpaired surrogate in \\u escape");
                        free(out);
                        return NULL;
                    }
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    fail(p, "unpaired surrogate in \\u escape");
                    free(out);
                    return NULL;
                }
                put_utf8(out, &o, cp); /* a 6-byte escape decodes to <= 4 bytes; 12 bytes to 4 */
                break;
            }
            default:
                p->i -= 1;
                fail(p, "bad escape");
                free(out);
                return NULL;
            }
        } else {
            size_t len = utf8_len((const unsigned char *)p->s + p->i, p->n - p->i);
            if (!len) {
                fail(p, "not UTF-8");
                free(out);
                return NULL;
            }
            memcpy(out + o, p->s + p->i, len);
            o += len;
            p->i += len;
        }
    }
    p->i++; /* closing quote */
    out[o] = '\0';
    *length = o;
    return out;
}

static int parse_number(parser *p, json_value *v) {
    size_t start = p->i;
    char buf[64];
    char *end;
    if (p->i < p->n && p->s[p->i] == '-') p->i++;
    if (p->i < p->n && p->s[p->i] == '0') p->i++;
    else if (p->i < p->n && p->s[p->i] >= '1' && p->s[p->i] <= '9')
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    else {
        fail(p, "unexpected character");
        return 0;
    }
    if (p->i < p->n && p->s[p->i] == '.') {
        p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') {
            fail(p, "digit expected after '.'");
            return 0;
        }
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i < p->n && (p->s[p->i] == 'e' || p->s[p->i] == 'E')) {
        p->i++;
        if (p->i < p->n && (p->s[p->i] == '+' || p->s[p->i] == '-')) p->i++;
        if (p->i >= p->n || p->s[p->i] < '0' || p->s[p->i] > '9') {
            fail(p, "digit expected in exponent");
            return 0;
        }
        while (p->i < p->n && p->s[p->i] >= '0' && p->s[p->i] <= '9') p->i++;
    }
    if (p->i - start >= sizeof buf) {
        fail(p, "number too long");
        return 0;
    }
    memcpy(buf, p->s + start, p->i - start);
    buf[p->i - start] = '\0';
    v->type = JSON_NUMBER;
    v->number = strtod(buf, &end);
    if (!isfinite(v->number)) {
        fail(p, "number out of range");
        return 0;
    }
    return 1;
}

static int literal(parser *p, const char *word) {
    size_t len = strlen(word);
    if (p->n - p->i < len || memcmp(p->s + p->i, word, len) != 0) {
        fail(p, "unexpected character");
        return 0;
    }
    p->i += len;
    return 1;
}

static int grow(parser *p, json_value *v, size_t *cap, int with_keys) {
    size_t ncap;
    json_value *items;
    if (v->count < *cap) return 1;
    ncap = *cap ? 2 * *cap : 8;
    items = (json_value *)realloc(v->items, ncap * sizeof *items);
    if (!items) {
        fail(p, "out of memory");
        return 0;
    }
    v->items = items;
    if (with_keys) {
        char **keys = (char **)realloc(v->keys, ncap * sizeof *keys);
        if (!keys) {
            fail(p, "out of memory");
            return 0;
        }
        v->keys = keys;
    }
    *cap = ncap;
    return 1;
}

static int parse_array(parser *p, json_value *v, int depth) {
    size_t cap = 0;
    v->type = JSON_ARRAY;
    p->i++;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == ']') {
        p->i++;
        return 1;
    }
    for (;;) {
        if (!grow(p, v, &cap, 0)) return 0;
        memset(&v->items[v->count], 0, sizeof v->items[0]);
        v->count++;
        if (!parse_value(p, &v->items[v->count - 1], depth + 1)) return 0;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == ']') {
            p->i++;
            return 1;
        }
        fail(p, "expected ',' or ']'");
        return 0;
    }
}

static int parse_object(parser *p, json_value *v, int depth) {
    size_t cap = 0, k;
    v->type = JSON_OBJECT;
    p->i++;
    skip_ws(p);
    if (p->i < p->n && p->s[p->i] == '}') {
        p->i++;
        return 1;
    }
    for (;;) {
        size_t klen;
        char *key;
        skip_ws(p);
        key = parse_string(p, &klen);
        if (!key) return 0;
        for (k = 0; k < v->count; k++)
            if (strcmp(v->keys[k], key) == 0) {
                fail(p, "duplicate key \"%.60s\"", key);
                free(key);
                return 0;
            }
        if (!grow(p, v, &cap, 1)) {
            free(key);
            return 0;
        }
        v->keys[v->count] = key;
        memset(&v->items[v->count], 0, sizeof v->items[0]);
        v->count++;
        skip_ws(p);
        if (p->i >= p->n || p->s[p->i] != ':') {
            fail(p, "expected ':'");
            return 0;
        }
        p->i++;
        if (!parse_value(p, &v->items[v->count - 1], depth + 1)) return 0;
        skip_ws(p);
        if (p->i < p->n && p->s[p->i] == ',') {
            p->i++;
            continue;
        }
        if (p->i < p->n && p->s[p->i] == '}') {
            p->i++;
            return 1;
        }
        fail(p, "expected ',' or '}'");
        return 0;
    }
}

static int parse_value(parser *p, json_value *v, int depth) {
    if (depth > JSON_MAX_DEPTH) {
        fail(p, "nested too deeply");
        return 0;
    }
    skip_ws(p);
    if (p->i >= p->n) {
        fail(p, "unexpected end of text");
        return 0;
    }
    switch (p->s[p->i]) {
    case '{': return parse_object(p, v, depth);
    case '[': return parse_array(p, v, depth);
    case '"':
        v->type = JSON_STRING;
        v->string = parse_string(p, &v->length);
        return v->string != NULL;
    case 't': v->type = JSON_TRUE; return literal(p, "true");
    case 'f': v->type = JSON_FALSE; return literal(p, "false");
    case 'n': v->type = JSON_NULL; return literal(p, "null");
    default: return parse_number(p, v);
    }
}

static void free_members(json_value *v) {
    size_t k;
    if (v->type == JSON_STRING) free(v->string);
    if (v->type == JSON_ARRAY || v->type == JSON_OBJECT) {
        for (k = 0; k < v->count; k++) {
            free_members(&v->items[k]);
            if (v->type == JSON_OBJECT) free(v->keys[k]);
        }
        free(v->items);
        free(v->keys);
    }
}

json_value *json_parse(const char *text, size_t len, char *err, size_t errlen) {
    parser p;
    json_value *v = (json_value *)calloc(1, sizeof *v);
    if (!v) {
        if (err && errlen) snprintf(err, errlen, "out of memory");
        return NULL;
    }
    p.s = text;
    p.n = len;
    p.i = 0;
    p.err = err;
    p.errlen = errlen;
    p.failed = 0;
    if (len >= 3 && memcmp(text, "\xEF\xBB\xBF", 3) == 0) fail(&p, "byte-order mark");
    if (!p.failed && parse_value(&p, v, 0)) {
        skip_ws(&p);
        if (p.i != p.n) fail(&p, "extra data after the JSON value");
    }
    if (p.failed) {
        json_free(v);
        return NULL;
    }
    return v;
}

void json_free(json_value *v) {
    if (!v) return;
    free_members(v);
    free(v);
}

const json_value *json_get(const json_value *obj, const char *key) {
    size_t k;
    if (!obj || obj->type != JSON_OBJECT) return NULL;
    for (k = 0; k < obj->count; k++)
        if (strcmp(obj->keys[k], key) == 0) return &obj->items[k];
    return NULL;
}

const json_value *json_at(const json_value *arr, size_t i) {
    if (!arr || arr->type != JSON_ARRAY || i >= arr->count) return NULL;
    return &arr->items[i];
}

const char *json_str(const json_value *v) {
    if (!v || v->type != JSON_STRING || strlen(v->string) != v->length) return NULL;
    return v->string;
}

int json_num(const json_value *v, double *out) {
    if (!v || v->type != JSON_NUMBER) return 0;
    *out = v->number;
    return 1;
}

int json_int(const json_value *v, long long *out) {
    if (!v || v->type != JSON_NUMBER || v->number != floor(v->number) || fabs(v->number) > 9007199254740992.0)
        return 0;
    *out = (long long)v->number;
    return 1;
}
