/* The narrow HTTP/1.1 that toxiproxy's clients speak to its API: a request line,
 * headers, and a body of Content-Length bytes. What falls outside is refused with
 * a status, never guessed at:
 *   400 a malformed request line or header, a bad or repeated Content-Length
 *   405 a method other than GET, POST, PATCH, DELETE, PUT, HEAD
 *   411 a chunked body (Transfer-Encoding): clients of this API send lengths
 *   413 a body over HTTP_BODY_MAX
 *   414 a target over HTTP_TARGET_MAX
 *   431 a head (request line and headers) over HTTP_HEAD_MAX
 *   505 a version other than HTTP/1.0 and HTTP/1.1
 * Pure: no allocation, no I/O, so the fuzzer drives it directly. */
#ifndef SOCKIT_CLI_HTTP_H
#define SOCKIT_CLI_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#define HTTP_HEAD_MAX   8192
#define HTTP_TARGET_MAX 1024
#define HTTP_BODY_MAX   (1 << 20)

typedef struct http_request {
    char method[8];
    char path[HTTP_TARGET_MAX]; /* percent-decoded, without the query */
    int minor;                  /* HTTP/1.minor */
    long long content_length;   /* 0 when none was given */
    bool keep_alive;            /* the connection stays open after the response */
    bool expect_continue;       /* "Expect: 100-continue": the client waits for a 100 */
    bool from_browser;          /* User-Agent "Mozilla/...": toxiproxy refuses those
                                   (a web page must not reach the API) */
} http_request;

/* Reads a request's head from buf[len]. Returns the head's length (the body
 * follows it) when it is complete, 0 when more bytes are needed, or minus the
 * status that refuses it, with the reason in why[size]. */
int http_parse_head(const char *buf, size_t len, http_request *req, char *why, size_t size);

/* The reason phrase of a status ("Not Found"). */
const char *http_reason(int status);

#endif
