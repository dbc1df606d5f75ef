/* The bundle as firmware sees it: manifest.json parsed strictly, every listed file re-hashed (SHA-256), nothing
 * unlisted, no links; the compiled-in header checked against the bundle's; roles and golden tolerances. */
#define _XOPEN_SOURCE 700
#include <dirent.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "jefw.h"
#include "jefw_sha256.h"

#define MANIFEST_NAME "manifest.json"
#define SIGNATURE_NAME "manifest.json.sig"
#define HEADER_PATH "include/jepa_edge_model.h"
#define MAX_MANIFEST_BYTES (16L << 20)

double jefw_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

void jefw_json_string(FILE *out, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    fputc('"', out);
    for (; *p; p++) {
        if (*p == '"' || *p == '\\') fprintf(out, "\\%c", *p);
        else if (*p < 0x20) fprintf(out, "\\u%04x", *p);
        else fputc(*p, out);
    }
    fputc('"', out);
}

int jefw_read_all(const char *path, char **data, size_t *len, char *err) {
    FILE *f = fopen(path, "rb");
    long size;
    char *buf;
    *data = NULL;
    *len = 0;
    if (!f) {
        jefw_errf(err, "%s: cannot open (%s)", path, strerror(errno));
        return -1;
    }
    if (fseek(f, 0, SEEK_END) != 0 || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        jefw_errf(err, "%s: cannot read (%s)", path, strerror(errno));
        fclose(f);
        return -1;
    }
    buf = (char *)malloc((size_t)size + 1);
    if (!buf) {
        jefw_errf(err, "%s: out of memory for %ld bytes", path, size);
        fclose(f);
        return -1;
    }
    if (size > 0 && fread(buf, 1, (size_t)size, f) != (size_t)size) {
        jefw_errf(err, "%s: short read", path);
        free(buf);
        fclose(f);
        return -1;
    }
    fclose(f);
    buf[size] = '\0';
    *data = buf;
    *len = (size_t)size;
    return 0;
}

static char *dup_str(const char *s) {
    size_t n = strlen(s) + 1;
    char *d = (char *)malloc(n);
    if (d) memcpy(d, s, n);
    return d;
}

/* The manifest's relpath pattern: ^[A-Za-z0-9_][A-Za-z0-9._-]*(/[A-Za-z0-9_][A-Za-z0-9._-]*)*$, <= 255 chars. */
static int safe_rel_path(const char *p) {
    int start = 1;
    size_t n = strlen(p);
    if (n == 0 || n > 255) return 0;
    for (; *p; p++) {
        char c = *p;
        int word = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '_';
        if (start) {
            if (!word) return 0;
            start = 0;
        } else if (c == '/') start = 1;
        else if (!word && c != '.' && c != '-') return 0;
    }
    return !start;
}

static int is_hex64(const char *s) {
    int i;
    for (i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return s[64] == '\0';
}

void jefw_bundle_close(jefw_bundle_t *b) {
    size_t i;
    for (i = 0; i < b->nfiles; i++) {
        free(b->files[i].path);
        free(b->files[i].role);
    }
    free(b->files);
    json_free(b->manifest);
    free(b->dir);
    memset(b, 0, sizeof *b);
}

int jefw_bundle_open(jefw_bundle_t *b, const char *dir, char *err) {
    char *path, *text, perr[JEFW_ERR];
    size_t len, i, dl = strlen(dir);
    const json_value *files;
    struct stat st;
    memset(b, 0, sizeof *b);
    while (dl > 1 && dir[dl - 1] == '/') dl--;
    b->dir = (char *)malloc(dl + 1);
    path = (char *)malloc(dl + sizeof(MANIFEST_NAME) + 2);
    if (!b->dir || !path) {
        free(path);
        jefw_errf(err, "out of memory");
        return JEFW_EXIT_SYSTEM;
    }
    memcpy(b->dir, dir, dl);
    b->dir[dl] = '\0';
    if (stat(b->dir, &st) != 0 || !S_ISDIR(st.st_mode)) {
        jefw_errf(err, "%s: not a bundle folder (missing or not a directory)", b->dir);
        free(path);
        return JEFW_EXIT_BUNDLE;
    }
    sprintf(path, "%s/%s", b->dir, MANIFEST_NAME);
    if (lstat(path, &st) != 0 || !S_ISREG(st.st_mode)) {
        jefw_errf(err, "%s: missing or not a plain file (not a bundle, or an unfinished build)", path);
        free(path);
        return JEFW_EXIT_BUNDLE;
    }
    if (st.st_size > MAX_MANIFEST_BYTES) {
        jefw_errf(err, "%s: %lld bytes, larger than any manifest", path, (long long)st.st_size);
        free(path);
        return JEFW_EXIT_BUNDLE;
    }
    if (jefw_read_all(path, &text, &len, err) != 0) {
        free(path);
        return JEFW_EXIT_BUNDLE;
    }
    b->manifest = json_parse(text, len, perr, sizeof perr);
    free(text);
    if (!b->manifest || b->manifest->type != JSON_OBJECT) {
        jefw_errf(err, "%s: %s", path, b->manifest ? "top level must be a JSON object" : perr);
        free(path);
        return JEFW_EXIT_BUNDLE;
    }
    files = json_get(b->manifest, "files");
    if (!files || files->type != JSON_ARRAY || files->count == 0) {
        jefw_errf(err, "%s: $.files must be a non-empty array", path);
        free(path);
        return JEFW_EXIT_BUNDLE;
    }
    b->files = (jefw_file_t *)calloc(files->count, sizeof *b->files);
    if (!b->files) {
        jefw_errf(err, "out of memory");
        free(path);
        return JEFW_EXIT_SYSTEM;
    }
    for (i = 0; i < files->count; i++) {
        const json_value *e = json_at(files, i);
        const char *rel = json_str(json_get(e, "path")), *role = json_str(json_get(e, "role"));
        const char *sha = json_str(json_get(e, "sha256"));
        long long bytes;
        if (!rel || !role || !sha || !is_hex64(sha) || !json_int(json_get(e, "bytes"), &bytes) || bytes < 0) {
            jefw_errf(err, "%s: $.files[%lu] needs path, role, sha256 (64 hex digits) and bytes", path,
                      (unsigned long)i);
            free(path);
            return JEFW_EXIT_BUNDLE;
        }
        if (!safe_rel_path(rel)) {
            jefw_errf(err, "%s: $.files[%lu].path '%.100s' is not a plain relative path inside the bundle", path,
                      (unsigned long)i, rel);
            free(path);
            return JEFW_EXIT_BUNDLE;
        }
        b->files[i].path = dup_str(rel);
        b->files[i].role = dup_str(role);
        memcpy(b->files[i].sha256, sha, 65);
        b->files[i].bytes = bytes;
        b->nfiles++;
        if (!b->files[i].path || !b->files[i].role) {
            jefw_errf(err, "out of memory");
            free(path);
            return JEFW_EXIT_SYSTEM;
        }
    }
    free(path);
    return JEFW_EXIT_OK;
}

const jefw_file_t *jefw_bundle_role(const jefw_bundle_t *b, const char *role) {
    size_t i;
    for (i = 0; i < b->nfiles; i++)
        if (strcmp(b->files[i].role, role) == 0) return &b->files[i];
    return NULL;
}

const jefw_file_t *jefw_bundle_file(const jefw_bundle_t *b, const char *rel) {
    size_t i;
    for (i = 0; i < b->nfiles; i++)
        if (strcmp(b->files[i].path, rel) == 0) return &b->files[i];
    return NULL;
}

char *jefw_bundle_join(const jefw_bundle_t *b, const char *rel) {
    char *p = (char *)malloc(strlen(b->dir) + strlen(rel) + 2);
    if (p) sprintf(p, "%s/%s", b->dir, rel);
    return p;
}

static const char *manifest_modality(const jefw_bundle_t *b) {
    const char *s = json_str(json_get(json_get(b->manifest, "model"), "modality"));
    return s ? s : "ecg";
}

static const char *manifest_output_kind(const jefw_bundle_t *b) {
    const char *s = json_str(json_get(json_get(json_get(b->manifest, "model"), "output"), "kind"));
    return s ? s : "multilabel";
}

int jefw_bundle_supported(const jefw_bundle_t *b, const jefw_model_t *m, char *err) {
    const char *modality = manifest_modality(b), *kind = manifest_output_kind(b);
    if (strcmp(modality, "ecg-beat") == 0) { /* the arrhythmia monitor (jefw_monitor.c) */
        if (strcmp(kind, "multiclass") != 0 || strcmp(m->modality, "ecg-beat") != 0 || m->beat_before <= 0 ||
            m->quality_fs <= 0) {
            jefw_errf(err, "%s: a beat model needs a one-of-N output and a runner compiled against its header "
                           "(this one: %s header, output kind %d); rebuild the runner against this bundle",
                      b->dir, m->modality, m->output_kind);
            return JEFW_EXIT_UNSUPPORTED;
        }
        return JEFW_EXIT_OK;
    }
    if (strcmp(modality, "ecg") != 0) {
        jefw_errf(err, "%s: an %s model (model.modality); this runner runs ECG windows and beat monitors only: "
                       "run echo clips with `jepa-edge echo infer`", b->dir, modality);
        return JEFW_EXIT_UNSUPPORTED;
    }
    if (strcmp(kind, "multilabel") != 0) {
        jefw_errf(err, "%s: a %s output (model.output.kind); this runner decodes multi-label ECG heads only "
                       "(sigmoid scores against thresholds)", b->dir, kind);
        return JEFW_EXIT_UNSUPPORTED;
    }
    if (strcmp(m->modality, "ecg") != 0 || m->num_leads <= 0 || m->output_kind != 0) {
        jefw_errf(err, "this runner was compiled against an %s header (output kind %d); it runs multi-label ECG "
                       "bundles only: rebuild it against an ECG bundle", m->modality, m->output_kind);
        return JEFW_EXIT_UNSUPPORTED;
    }
    return JEFW_EXIT_OK;
}

static int listed(const jefw_bundle_t *b, const char *rel) {
    return jefw_bundle_file(b, rel) != NULL || strcmp(rel, MANIFEST_NAME) == 0 || strcmp(rel, SIGNATURE_NAME) == 0;
}

/* Every file under the bundle that manifest.json does not list (added after the build). */
static int walk_unlisted(const jefw_bundle_t *b, const char *rel_dir, FILE *report, int depth) {
    char *full, child[1024];
    DIR *d;
    struct dirent *e;
    int failures = 0;
    if (depth > 16) return 0;
    full = rel_dir[0] ? jefw_bundle_join(b, rel_dir) : dup_str(b->dir);
    if (!full) return 1;
    d = opendir(full);
    free(full);
    if (!d) return 0;
    while ((e = readdir(d)) != NULL) {
        struct stat st;
        char *abs;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) continue;
        if ((size_t)snprintf(child, sizeof child, "%s%s%s", rel_dir, rel_dir[0] ? "/" : "", e->d_name) >= sizeof child)
            continue;
        abs = jefw_bundle_join(b, child);
        if (!abs) continue;
        if (lstat(abs, &st) == 0 && S_ISDIR(st.st_mode)) failures += walk_unlisted(b, child, report, depth + 1);
        else if (!listed(b, child)) {
            fprintf(report, "FAIL %s: not listed in manifest.json (added after the build)\n", child);
            failures++;
        }
        free(abs);
    }
    closedir(d);
    return failures;
}

int jefw_bundle_verify(const jefw_bundle_t *b, FILE *report) {
    size_t i;
    int failures = 0;
    char root[PATH_MAX], real[PATH_MAX];
    if (!realpath(b->dir, root)) root[0] = '\0';
    for (i = 0; i < b->nfiles; i++) {
        const jefw_file_t *f = &b->files[i];
        char hex[65];
        unsigned long long got;
        struct stat st;
        char *abs = jefw_bundle_join(b, f->path);
        size_t rl = strlen(root);
        if (!abs) return failures + 1;
        if (lstat(abs, &st) != 0)
            fprintf(report, "FAIL %s: listed in manifest.json but missing\n", f->path), failures++;
        else if (S_ISLNK(st.st_mode) || !realpath(abs, real) || strncmp(real, root, rl) != 0 || real[rl] != '/')
            fprintf(report, "FAIL %s: is a link; bundles hold plain files only\n", f->path), failures++;
        else if (!S_ISREG(st.st_mode))
            fprintf(report, "FAIL %s: not a plain file\n", f->path), failures++;
        else if ((long long)st.st_size != f->bytes)
            fprintf(report, "FAIL %s: %lld bytes, manifest.json says %lld (file changed or truncated)\n", f->path,
                    (long long)st.st_size, f->bytes),
                failures++;
        else if (jefw_sha256_file(abs, hex, &got) != 0)
            fprintf(report, "FAIL %s: cannot read (%s)\n", f->path, strerror(errno)), failures++;
        else if (strcmp(hex, f->sha256) != 0)
            fprintf(report, "FAIL %s: SHA-256 differs from manifest.json (file changed or corrupted)\n", f->path),
                failures++;
        free(abs);
    }
    return failures + walk_unlisted(b, "", report, 0);
}

int jefw_bundle_header_matches(const jefw_bundle_t *b, const jefw_model_t *m, char *err) {
    const jefw_file_t *h = jefw_bundle_file(b, HEADER_PATH);
    const json_value *model = json_get(b->manifest, "model"), *labels = json_get(b->manifest, "labels");
    const json_value *pre = json_get(b->manifest, "preprocessing");
    const char *name = json_str(json_get(model, "name"));
    long long fs = -1, window = -1, hop = -1;
    int i;
    if (!h) {
        jefw_errf(err, "%s: manifest.json lists no %s; rebuild the bundle", b->dir, HEADER_PATH);
        return JEFW_EXIT_BUNDLE;
    }
    if (m->header_sha256[0] && strcmp(m->header_sha256, h->sha256) != 0) {
        jefw_errf(err, "%s: header from another bundle: this runner was compiled against a header with SHA-256 "
                       "%.16s..., this bundle's is %.16s... (model '%s'); rebuild the runner against this bundle "
                       "(jepa-edge firmware build %s)", HEADER_PATH, m->header_sha256, h->sha256,
                  name ? name : "?", b->dir);
        return JEFW_EXIT_BUNDLE;
    }
    /* the header's own numbers against the manifest (a runner built by hand carries no header hash) */
    json_int(json_get(pre, "fs"), &fs);
    json_int(json_get(pre, "window"), &window);
    json_int(json_get(pre, "hop"), &hop);
    if (!name || strcmp(name, m->model_name) != 0 || fs != m->fs || window != m->window || hop != m->hop ||
        !labels || labels->type != JSON_ARRAY || (int)labels->count != m->num_labels) {
        jefw_errf(err, "%s: header from another bundle: the header says model '%s' at %d Hz, window %d, hop %d, "
                       "%d labels; manifest.json says '%s' at %lld Hz, window %lld, hop %lld: rebuild the runner "
                       "against this bundle", HEADER_PATH, m->model_name, m->fs, m->window, m->hop, m->num_labels,
                  name ? name : "?", fs, window, hop);
        return JEFW_EXIT_BUNDLE;
    }
    for (i = 0; i < m->num_labels; i++) {
        const char *lab = json_str(json_at(labels, (size_t)i));
        if (!lab || strcmp(lab, m->labels[i]) != 0) {
            jefw_errf(err, "%s: header from another bundle: label %d is '%s' in the header, '%s' in manifest.json",
                      HEADER_PATH, i, m->labels[i], lab ? lab : "?");
            return JEFW_EXIT_BUNDLE;
        }
    }
    return JEFW_EXIT_OK;
}

static int tolerance_value(const json_value *t, const char *name, double *tol) {
    if (!t) return 0;
    if (t->type == JSON_NUMBER) return json_num(t, tol);
    return json_num(json_get(t, name), tol);
}

int jefw_bundle_tolerance(const jefw_bundle_t *b, const char *role, const char *fallback, const char *name,
                          double *tol, const char **key) {
    const json_value *tols = json_get(json_get(b->manifest, "golden"), "tolerances");
    size_t i, rl = strlen(role);
    if (!tols || tols->type != JSON_OBJECT) return 0;
    for (i = 0; i < tols->count; i++) { /* exact role, or an OpenVINO IR's role without "-xml" */
        const char *k = tols->keys[i];
        size_t kl = strlen(k);
        if (strcmp(k, role) == 0 || (rl == kl + 4 && strncmp(k, role, kl) == 0 && strcmp(role + kl, "-xml") == 0)) {
            *key = k;
            return tolerance_value(&tols->items[i], name, tol);
        }
    }
    if (fallback && tolerance_value(json_get(tols, fallback), name, tol)) {
        *key = fallback;
        return 1;
    }
    return 0;
}
