/* sockit tls-cert: a self-signed certificate and its key for local testing, made
 * with OpenSSL's libcrypto directly (no openssl command needed): ECDSA P-256, SHA-256,
 * for localhost, 127.0.0.1 and ::1 plus any --name, serverAuth and clientAuth, so
 * the one pair serves `listen --tls` and, as --ca, `connect --tls`.
 *
 * The library links OpenSSL when its build found it, and the CLI links the library,
 * so libcrypto is there exactly when sockit_has_tls() says so. The headers may be
 * installed in a build without TLS (SOCKIT_TLS=OFF): the OpenSSL functions are then
 * weak references, NULL at run time, and never called, since sockit_has_tls() is
 * asked first. */
#include "cli.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <sockit_tls.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define TLS_CERT_NAMES_MAX    32
#define TLS_CERT_DAYS         365
#define TLS_CERT_DNS_NAME_MAX 253

static const char *const usage =
    "sockit tls-cert [--out DIR | --cert FILE --key FILE] [--name NAME]... [--days N] [--force]";

static void help(void)
{
    printf("usage: %s\n\n", usage);
    printf("Write a self-signed certificate and its private key for local testing: ECDSA\n"
           "P-256 signed with SHA-256, for localhost, 127.0.0.1 and ::1 (subjectAltName)\n"
           "plus every --name, good for servers and clients (serverAuth, clientAuth).\n"
           "The key file is readable by its owner only (mode 0600). No openssl command is\n"
           "needed: sockit calls OpenSSL's library itself.\n\n"
           "  --out DIR       write DIR/cert.pem and DIR/key.pem (default: the current\n"
           "                  directory)\n"
           "  --cert FILE     write the certificate to FILE (with --key, instead of --out)\n"
           "  --key FILE      write the private key to FILE\n"
           "  --name NAME     one more name, a DNS name (a leading *. for a wildcard) or an\n"
           "                  IPv4/IPv6 address; repeatable, up to %d. The first is also\n"
           "                  the subject's CN (default CN=localhost)\n"
           "  --days N        valid for N days from now (1-36500; default %d)\n"
           "  --force         replace files that exist (default: refuse, and write none)\n"
           "  -h, --help      this page\n\n"
           "Then, for example:\n"
           "  sockit listen --tls --cert cert.pem --key key.pem 9000\n"
           "  sockit connect --tls --ca cert.pem localhost 9000\n\n"
           "exit status: 0 written, 1 a file could not be written (or this sockit has no\n"
           "TLS), 2 bad usage.\n",
           TLS_CERT_NAMES_MAX, TLS_CERT_DAYS);
}

/* A DNS name the certificate can carry: labels of letters, digits and '-' (not at
 * either end), 1-63 bytes, dot-separated; a leading "*." for a wildcard. */
static bool dns_name_ok(const char *name)
{
    size_t len = strlen(name);
    if (len == 0 || len > TLS_CERT_DNS_NAME_MAX)
        return false;
    const char *p = name;
    if (strncmp(p, "*.", 2) == 0)
        p += 2;
    for (;;) {
        size_t n = 0;
        while (p[n] != '\0' && p[n] != '.') {
            char c = p[n];
            bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                      c == '-';
            if (!ok)
                return false;
            n++;
        }
        if (n == 0 || n > 63 || p[0] == '-' || p[n - 1] == '-')
            return false;
        if (p[n] == '\0')
            return true;
        p += n + 1;
    }
}

static bool ip_literal(const char *name)
{
    unsigned char addr[16];
    return inet_pton(AF_INET, name, addr) == 1 || inet_pton(AF_INET6, name, addr) == 1;
}

typedef struct cert_request {
    const char *names[TLS_CERT_NAMES_MAX + 3];
    size_t nnames;
    const char *cn;
    long days;
    const char *cert_path, *key_path;
    bool force;
} cert_request;

/* The name, unless the defaults or an earlier --name have it already. */
static void add_name(cert_request *r, const char *name)
{
    for (size_t i = 0; i < r->nnames; i++)
        if (strcasecmp(r->names[i], name) == 0)
            return;
    r->names[r->nnames++] = name;
}

/* subjectAltName's text: "DNS:localhost,IP:127.0.0.1,IP:::1,...". Every name was
 * checked (dns_name_ok or ip_literal), so none can smuggle in a comma or a type. */
static void san_text(const cert_request *r, char *buf, size_t size, const char *sep)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < r->nnames && used < size; i++) {
        int n = snprintf(buf + used, size - used, "%s%s:%s", i > 0 ? sep : "",
                         ip_literal(r->names[i]) ? "IP" : "DNS", r->names[i]);
        if (n < 0)
            break;
        used += (size_t)n;
    }
}

/* Opens path for writing, mode (the key's 0600 also on a replaced file). */
static FILE *open_out(const char *path, mode_t mode, bool force)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC | (force ? O_TRUNC : O_EXCL), mode);
    if (fd < 0) {
        cli_fail("%s: %s", path, strerror(errno));
        return NULL;
    }
    if (fchmod(fd, mode) < 0) {
        cli_fail("%s: %s", path, strerror(errno));
        close(fd);
        return NULL;
    }
    FILE *f = fdopen(fd, "w");
    if (f == NULL) {
        cli_fail("%s: %s", path, strerror(errno));
        close(fd);
    }
    return f;
}

#if defined(__has_include)
#if __has_include(<openssl/evp.h>) && __has_include(<openssl/x509v3.h>)
#define TLS_CERT_OPENSSL 1
#endif
#endif

#ifdef TLS_CERT_OPENSSL
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>

/* Weak: a build without TLS links no libcrypto, and these stay NULL (never called). */
#pragma weak EVP_PKEY_Q_keygen
#pragma weak EVP_PKEY_free
#pragma weak EVP_sha256
#pragma weak X509_new
#pragma weak X509_free
#pragma weak X509_set_version
#pragma weak X509_get_serialNumber
#pragma weak ASN1_INTEGER_set_uint64
#pragma weak RAND_bytes
#pragma weak X509_gmtime_adj
#pragma weak X509_time_adj_ex
#pragma weak X509_getm_notBefore
#pragma weak X509_getm_notAfter
#pragma weak X509_set_pubkey
#pragma weak X509_get_subject_name
#pragma weak X509_NAME_add_entry_by_txt
#pragma weak X509_set_issuer_name
#pragma weak X509V3_set_ctx
#pragma weak X509V3_EXT_conf_nid
#pragma weak X509_add_ext
#pragma weak X509_EXTENSION_free
#pragma weak X509_sign
#pragma weak X509_digest
#pragma weak PEM_write_PrivateKey
#pragma weak PEM_write_X509
#pragma weak ERR_get_error
#pragma weak ERR_error_string_n
#pragma weak ERR_clear_error

/* "sockit: making the certificate: <what>: <OpenSSL's reason>". */
static int crypto_fail(const char *what)
{
    char reason[256] = "unknown OpenSSL failure";
    unsigned long e = ERR_get_error();
    if (e != 0)
        ERR_error_string_n(e, reason, sizeof reason);
    ERR_clear_error();
    return cli_fail("making the certificate: %s: %s", what, reason);
}

static int add_ext(X509 *x, X509V3_CTX *ctx, int nid, const char *value)
{
    X509_EXTENSION *e = X509V3_EXT_conf_nid(NULL, ctx, nid, value);
    if (e == NULL)
        return crypto_fail(value);
    int ok = X509_add_ext(x, e, -1);
    X509_EXTENSION_free(e);
    return ok == 1 ? 0 : crypto_fail(value);
}

/* The certificate for the key: v3, random serial, now - 5 min to now + days. */
static X509 *make_cert(const cert_request *r, EVP_PKEY *key)
{
    X509 *x = X509_new();
    if (x == NULL) {
        crypto_fail("X509_new");
        return NULL;
    }
    unsigned char rnd[8];
    uint64_t serial = 0;
    if (RAND_bytes(rnd, sizeof rnd) == 1)
        for (size_t i = 0; i < sizeof rnd; i++)
            serial = serial << 8 | rnd[i];
    serial = (serial >> 1) | 1; /* positive, never 0 */
    X509_NAME *name = X509_get_subject_name(x);
    bool ok = X509_set_version(x, X509_VERSION_3) == 1 &&
              ASN1_INTEGER_set_uint64(X509_get_serialNumber(x), serial) == 1 &&
              X509_gmtime_adj(X509_getm_notBefore(x), -300) != NULL &&
              X509_time_adj_ex(X509_getm_notAfter(x), (int)r->days, 0, NULL) != NULL &&
              X509_set_pubkey(x, key) == 1 &&
              X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, (const unsigned char *)r->cn, -1,
                                         -1, 0) == 1 &&
              X509_set_issuer_name(x, name) == 1;
    if (!ok) {
        crypto_fail("the certificate's fields");
        X509_free(x);
        return NULL;
    }
    char san[(TLS_CERT_NAMES_MAX + 3) * (TLS_CERT_DNS_NAME_MAX + 6)];
    san_text(r, san, sizeof san, ",");
    X509V3_CTX ctx;
    memset(&ctx, 0, sizeof ctx);
    X509V3_set_ctx(&ctx, x, x, NULL, NULL, 0);
    /* A leaf, not a CA (strict clients refuse a CA certificate as a server's), that
     * OpenSSL trusts as itself when given as the CA file. */
    if (add_ext(x, &ctx, NID_basic_constraints, "critical,CA:FALSE") != 0 ||
        add_ext(x, &ctx, NID_key_usage, "critical,digitalSignature") != 0 ||
        add_ext(x, &ctx, NID_ext_key_usage, "serverAuth,clientAuth") != 0 ||
        add_ext(x, &ctx, NID_subject_key_identifier, "hash") != 0 ||
        add_ext(x, &ctx, NID_authority_key_identifier, "keyid:always") != 0 ||
        add_ext(x, &ctx, NID_subject_alt_name, san) != 0) {
        X509_free(x);
        return NULL;
    }
    if (X509_sign(x, key, EVP_sha256()) <= 0) {
        crypto_fail("signing");
        X509_free(x);
        return NULL;
    }
    return x;
}

/* Writes the pair. The files are checked first, so an existing one stops both. */
static int write_pair(const cert_request *r, X509 *x, EVP_PKEY *key)
{
    if (!r->force) {
        const char *paths[2] = {r->cert_path, r->key_path};
        for (int i = 0; i < 2; i++)
            if (access(paths[i], F_OK) == 0)
                return cli_fail("%s exists (--force replaces it); nothing written", paths[i]);
    }
    FILE *kf = open_out(r->key_path, 0600, r->force);
    if (kf == NULL)
        return CLI_FAIL;
    int ok = PEM_write_PrivateKey(kf, key, NULL, NULL, 0, NULL, NULL);
    if (fclose(kf) != 0 || ok != 1)
        return ok != 1 ? crypto_fail(r->key_path)
                       : cli_fail("%s: %s", r->key_path, strerror(errno));
    FILE *cf = open_out(r->cert_path, 0644, r->force);
    if (cf == NULL)
        return CLI_FAIL;
    ok = PEM_write_X509(cf, x);
    if (fclose(cf) != 0 || ok != 1)
        return ok != 1 ? crypto_fail(r->cert_path)
                       : cli_fail("%s: %s", r->cert_path, strerror(errno));
    return CLI_OK;
}

static int make_pair(const cert_request *r)
{
    if (!sockit_has_tls() || EVP_PKEY_Q_keygen == NULL)
        return cli_fail("tls-cert: this sockit was built without OpenSSL");
    EVP_PKEY *key = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (key == NULL)
        return crypto_fail("an ECDSA P-256 key");
    X509 *x = make_cert(r, key);
    int status = x != NULL ? write_pair(r, x, key) : CLI_FAIL;
    if (status == CLI_OK) {
        unsigned char md[EVP_MAX_MD_SIZE];
        unsigned int mdlen = 0;
        char fp[3 * EVP_MAX_MD_SIZE + 1] = "";
        if (X509_digest(x, EVP_sha256(), md, &mdlen) == 1)
            for (unsigned int i = 0; i < mdlen; i++)
                snprintf(fp + 3 * i, sizeof fp - 3 * i, "%02X%s", md[i], i + 1 < mdlen ? ":" : "");
        char san[(TLS_CERT_NAMES_MAX + 3) * (TLS_CERT_DNS_NAME_MAX + 6)];
        san_text(r, san, sizeof san, ", ");
        printf("certificate: %s (self-signed, ECDSA P-256, CN=%s, %ld days)\n"
               "  names:     %s\n"
               "  sha256:    %s\n"
               "key:         %s (mode 0600)\n",
               r->cert_path, r->cn, r->days, san, fp, r->key_path);
    }
    X509_free(x);
    EVP_PKEY_free(key);
    return status;
}
#else
static int make_pair(const cert_request *r)
{
    (void)r;
    return cli_fail("tls-cert: this sockit was built without OpenSSL");
}
#endif

int cmd_tls_cert(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"out", required_argument, NULL, 'o'},  {"cert", required_argument, NULL, 'c'},
        {"key", required_argument, NULL, 'k'},  {"name", required_argument, NULL, 'n'},
        {"days", required_argument, NULL, 'd'}, {"force", no_argument, NULL, 'f'},
        {"help", no_argument, NULL, 'h'},       {NULL, 0, NULL, 0},
    };
    cert_request r = {.days = TLS_CERT_DAYS};
    const char *out = NULL, *extra[TLS_CERT_NAMES_MAX];
    size_t nextra = 0;
    opterr = 0;
    int opt;
    while ((opt = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        int rc = 0;
        switch (opt) {
        case 'o':
            out = optarg;
            break;
        case 'c':
            r.cert_path = optarg;
            break;
        case 'k':
            r.key_path = optarg;
            break;
        case 'n':
            if (nextra == TLS_CERT_NAMES_MAX)
                return cli_usage_error(usage, "--name: at most %d names", TLS_CERT_NAMES_MAX);
            if (!ip_literal(optarg) && !dns_name_ok(optarg))
                return cli_usage_error(usage,
                                       "--name '%s': not a DNS name (letters, digits, '-', "
                                       "dots; *. for a wildcard) or an IP address",
                                       optarg);
            extra[nextra++] = optarg;
            break;
        case 'd':
            rc = cli_parse_count(usage, "--days", optarg, 1, 36500, &r.days);
            break;
        case 'f':
            r.force = true;
            break;
        case 'h':
            help();
            return CLI_OK;
        case ':':
            return cli_usage_error(usage, "option '%s' needs a value", argv[optind - 1]);
        default:
            return cli_unknown_option(usage, argc, argv, -1);
        }
        if (rc != 0)
            return rc;
    }
    if (optind < argc)
        return cli_usage_error(usage, "unexpected argument '%s'", argv[optind]);
    if (out != NULL && (r.cert_path != NULL || r.key_path != NULL))
        return cli_usage_error(usage, "--out and --cert/--key exclude each other");
    if ((r.cert_path == NULL) != (r.key_path == NULL))
        return cli_usage_error(usage, "--cert and --key go together (or --out DIR for both)");
    if ((out != NULL && out[0] == '\0') || (r.cert_path != NULL && r.cert_path[0] == '\0') ||
        (r.key_path != NULL && r.key_path[0] == '\0'))
        return cli_usage_error(usage, "an empty file or directory name");
    char cert_path[4096], key_path[4096];
    if (r.cert_path == NULL) {
        const char *dir = out != NULL ? out : ".";
        int a = snprintf(cert_path, sizeof cert_path, "%s/cert.pem", dir);
        int b = snprintf(key_path, sizeof key_path, "%s/key.pem", dir);
        if (a < 0 || b < 0 || (size_t)a >= sizeof cert_path || (size_t)b >= sizeof key_path)
            return cli_usage_error(usage, "--out: a directory name of %zu bytes", strlen(dir));
        r.cert_path = cert_path;
        r.key_path = key_path;
    }
    if (strcmp(r.cert_path, r.key_path) == 0)
        return cli_usage_error(usage, "--cert and --key name the same file");
    r.cn = nextra > 0 ? extra[0] : "localhost";
    add_name(&r, "localhost");
    add_name(&r, "127.0.0.1");
    add_name(&r, "::1");
    for (size_t i = 0; i < nextra; i++)
        add_name(&r, extra[i]);
    return make_pair(&r);
}
