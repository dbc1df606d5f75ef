/* A small strict JSON reader (RFC 8259): enough for manifest.json and golden/raw/index.json.
 * Strict like the Python loader: UTF-8 text, no NaN/Infinity, no duplicate keys, bounded depth. */
#ifndef JEFW_JSON_H
#define JEFW_JSON_H

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef enum { JSON_NULL, JSON_FALSE, JSON_TRUE, JSON_NUMBER, JSON_STRING, JSON_ARRAY, JSON_OBJECT } json_type;

typedef struct json_value {
    json_type type;
    double number;            /* JSON_NUMBER */
    char *string;             /* JSON_STRING: NUL-terminated UTF-8 (may hold embedded NULs: see length) */
    size_t length;            /* JSON_STRING: bytes */
    size_t count;             /* JSON_ARRAY / JSON_OBJECT: members */
    struct json_value *items; /* members */
    char **keys;              /* JSON_OBJECT: member names */
} json_value;

/* Parse `len` bytes; NULL on error with a message (byte offset included) in err. Free with json_free. */
json_value *json_parse(const char *text, size_t len, char *err, size_t errlen);
void json_free(json_value *v);

const json_value *json_get(const json_value *obj, const char *key); /* NULL: not an object or no such key */
const json_value *json_at(const json_value *arr, size_t i);         /* NULL: not an array or out of range */
const char *json_str(const json_value *v);                          /* NULL unless a string without NULs */
int json_num(const json_value *v, double *out);                     /* 1 if a number */
int json_int(const json_value *v, long long *out);                  /* 1 if an integral number */

#ifdef __cplusplus
}
#endif
#endif
