/* Replays the proxy API fuzz target's corpus (fuzz/corpus/http) through its
 * invariants (fuzz/fuzz_http.c) in every test run, and checks what the parser
 * and the routes answer to the cases that matter, one by one. */
#define SOCKIT_FUZZ_NO_MAIN
#include "harness.h"

#include "../fuzz/fuzz_http.c"

#include <dirent.h>

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    char *buf = malloc(HTTP_HEAD_MAX + HTTP_BODY_MAX);
    assert_non_null(buf);
    *len = fread(buf, 1, HTTP_HEAD_MAX + HTTP_BODY_MAX, f);
    fclose(f);
    return buf;
}

static void test_corpus_keeps_the_invariants(void **state)
{
    (void)state;
    const char *dir = SOCKIT_SOURCE_DIR "/fuzz/corpus/http";
    DIR *d = opendir(dir);
    assert_non_null(d);
    int files = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (de->d_name[0] == '.')
            continue;
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        size_t len;
        char *data = slurp(path, &len);
        const char *why = sockit_fuzz_http_check(data, len);
        if (why != NULL)
            fail_msg("%s: %s", de->d_name, why);
        free(data);
        files++;
    }
    closedir(d);
    assert_true(files >= 40);
}

static int parse(const char *text, http_request *req)
{
    char why[200];
    return http_parse_head(text, strlen(text), req, why, sizeof why);
}

static void test_parser_statuses(void **state)
{
    (void)state;
    http_request req;
    const char *ok = "POST /proxies/a%20b/toxics?x=1 HTTP/1.1\r\nContent-Length: 7\r\n"
                     "Expect: 100-continue\r\n\r\n";
    assert_int_equal(parse(ok, &req), (int)strlen(ok));
    assert_string_equal(req.method, "POST");
    assert_string_equal(req.path, "/proxies/a b/toxics");
    assert_int_equal(req.content_length, 7);
    assert_true(req.expect_continue);
    assert_true(req.keep_alive);
    assert_int_equal(parse("GET / HTTP/1.0\r\n\r\n", &req), 18);
    assert_false(req.keep_alive);
    assert_int_equal(parse("GET / HTTP/1.1\r\nConnection: close\r\n\r\n", &req) > 0, 1);
    assert_false(req.keep_alive);
    assert_int_equal(parse("GET / HTTP/1.1\r\nUser-Agent: Mozilla/5.0 (X11)\r\n\r\n", &req) > 0, 1);
    assert_true(req.from_browser);
    assert_int_equal(parse("GET / HTTP/1.1\r\nHost: x\r\n", &req), 0); /* not yet whole */
    assert_int_equal(parse("BREW / HTTP/1.1\r\n\r\n", &req), -405);
    assert_int_equal(parse("GET / HTTP/2.0\r\n\r\n", &req), -505);
    assert_int_equal(parse("GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", &req), -411);
    assert_int_equal(parse("GET / HTTP/1.1\r\nContent-Length: 2000000\r\n\r\n", &req), -413);
    assert_int_equal(
        parse("GET / HTTP/1.1\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n", &req), -400);
    assert_int_equal(parse("GET / HTTP/1.1\r\nContent-Length: -1\r\n\r\n", &req), -400);
    assert_int_equal(parse("GET /%zz HTTP/1.1\r\n\r\n", &req), -400);
    assert_int_equal(parse("GET nopath HTTP/1.1\r\n\r\n", &req), -400);
    assert_int_equal(parse("GET / HTTP/1.1\r\n folded\r\n\r\n", &req), -400);
    char big[HTTP_HEAD_MAX + 10];
    memset(big, 'a', sizeof big);
    memcpy(big, "GET /", 5);
    big[sizeof big - 1] = '\0';
    char why[200];
    assert_int_equal(http_parse_head(big, sizeof big - 1, &req, why, sizeof why), -431);
    assert_string_equal(http_reason(404), "Not Found");
}

/* The answers toxiproxy's clients rely on: shapes, statuses, messages. */
static void test_routes_answer_as_toxiproxy(void **state)
{
    (void)state;
    sockit_loop *loop = sockit_loop_new(NULL);
    assert_sock(loop);
    registry reg = {.loop = loop, .connect_timeout = 1, .seed = 1};
    struct {
        const char *method, *path, *body;
        int status;
        const char *has;
    } steps[] = {
        {"POST", "/proxies",
         "{\"name\":\"db\",\"listen\":\"127.0.0.1:0\",\"upstream\":\"127.0.0.1:9\"}", 201,
         "\"enabled\":true"},
        {"POST", "/proxies", "{\"name\":\"db\",\"upstream\":\"127.0.0.1:9\"}", 409,
         "{\"error\":\"proxy already exists\",\"status\":409}"},
        {"POST", "/proxies", "{\"upstream\":\"127.0.0.1:9\"}", 400, "missing required field: name"},
        {"POST", "/proxies", "{\"name\":\"x\"}", 400, "missing required field: upstream"},
        {"POST", "/proxies", "{\"name\":", 400, "bad request body"},
        {"POST", "/proxies", "{\"name\":\"x\",\"upstream\":\"127.0.0.1:9\",\"enabled\":\"yes\"}",
         400, "enabled"},
        {"POST", "/proxies/db/toxics", "{\"type\":\"latency\",\"attributes\":{\"latency\":100}}",
         200, "\"name\":\"latency_downstream\""},
        {"POST", "/proxies/db/toxics", "{\"type\":\"latency\"}", 409, "toxic already exists"},
        {"POST", "/proxies/db/toxics", "{\"type\":\"nope\"}", 400, "invalid toxic type"},
        {"POST", "/proxies/db/toxics", "{\"type\":\"latency\",\"stream\":\"x\"}", 400,
         "stream was invalid"},
        {"POST", "/proxies/db/toxics/latency_downstream", "{\"attributes\":{\"jitter\":5}}", 200,
         "{\"latency\":100,\"jitter\":5}"},
        {"GET", "/proxies/db/toxics", "", 200, "\"type\":\"latency\""},
        /* The same listen text again keeps the proxy and its toxics. */
        {"POST", "/populate",
         "[{\"name\":\"db\",\"listen\":\"127.0.0.1:0\",\"upstream\":\"127.0.0.1:9\"}]", 201,
         "\"toxics\":[{"},
        {"POST", "/proxies", "{\"name\":\"we\\\"ird\\n\",\"upstream\":\"127.0.0.1:9\"}", 201, NULL},
        {"GET", "/metrics", "", 200, "sockit_proxy_enabled{proxy=\"we\\\"ird\\n\"} 1"},
        {"GET", "/proxies/db", "", 200, "\"toxics\":[{"},
        {"GET", "/proxies/nope", "", 404, "{\"error\":\"proxy not found\",\"status\":404}"},
        {"GET", "/proxies/db/toxics/nope", "", 404, "toxic not found"},
        {"DELETE", "/proxies/db/toxics/latency_downstream", "", 204, NULL},
        {"GET", "/proxies/db/toxics", "", 200, "[]"},
        /* Our "protocol": a UDP proxy, its toxics, and no change of protocol. */
        {"POST", "/proxies",
         "{\"name\":\"u\",\"listen\":\"127.0.0.1:0\",\"upstream\":\"127.0.0.1:9\","
         "\"protocol\":\"udp\"}",
         201, "\"upstream\":\"127.0.0.1:9\",\"protocol\":\"udp\",\"enabled\":true"},
        {"POST", "/proxies", "{\"name\":\"v\",\"upstream\":\"127.0.0.1:9\",\"protocol\":\"quic\"}",
         400, "{\"error\":\"bad request body: protocol 'quic': tcp or udp\",\"status\":400}"},
        {"POST", "/proxies", "{\"name\":\"v\",\"upstream\":\"127.0.0.1:9\",\"protocol\":1}", 400,
         "protocol: not a string"},
        {"POST", "/proxies/u/toxics", "{\"type\":\"slicer\"}", 400, "acts on stream proxies only"},
        {"POST", "/proxies/db/toxics", "{\"type\":\"loss\"}", 400, "acts on datagram proxies only"},
        {"POST", "/proxies/u/toxics", "{\"type\":\"loss\",\"attributes\":{\"probability\":0.3}}",
         200, "\"attributes\":{\"probability\":0.3,\"burst\":0},\"name\":\"loss_downstream\""},
        {"POST", "/proxies/u/toxics", "{\"type\":\"reorder\",\"stream\":\"upstream\"}", 200,
         "{\"probability\":0.0,\"gap\":1,\"delay\":100}"},
        {"POST", "/proxies/u/toxics",
         "{\"name\":\"l2\",\"type\":\"loss\",\"attributes\":{\"probability\":0.9,\"burst\":1}}",
         400, "a loss of 0.9 needs runs of 9"},
        {"POST", "/proxies/u", "{\"protocol\":\"tcp\"}", 400, "protocol 'tcp': the proxy is udp"},
        {"POST", "/proxies/u", "{\"protocol\":\"udp\",\"enabled\":false}", 200,
         "\"protocol\":\"udp\",\"enabled\":false"},
        /* A new listen address: a new proxy of the same protocol, with the toxics. */
        {"POST", "/proxies/u", "{\"listen\":\"127.0.0.2:0\"}", 200,
         "\"protocol\":\"udp\",\"enabled\":false,\"toxics\":[{"},
        {"GET", "/metrics", "", 200,
         "sockit_proxy_datagrams_total{direction=\"upstream\",proxy=\"u\"} 0"},
        {"GET", "/metrics", "", 200, "sockit_proxy_datagrams_dropped_total{proxy=\"u\"} 0"},
        {"POST", "/populate", "[{\"name\":\"w\",\"upstream\":\"127.0.0.1:9\",\"protocol\":\"x\"}]",
         400, "protocol 'x': tcp or udp"},
        /* populate with another protocol (tcp by default) replaces the proxy */
        {"POST", "/populate",
         "[{\"name\":\"u\",\"listen\":\"127.0.0.1:0\",\"upstream\":\"127.0.0.1:9\"}]", 201,
         "\"protocol\":\"tcp\",\"enabled\":true,\"toxics\":[]"},
        {"DELETE", "/proxies/u", "", 204, NULL},
        {"POST", "/proxies/db", "{\"enabled\":false}", 200, "\"enabled\":false"},
        {"POST", "/reset", "", 204, NULL},
        {"GET", "/proxies", "", 200, "\"db\":{\"name\":\"db\""},
        {"GET", "/metrics", "", 200, "toxiproxy_proxy_sent_bytes_total{direction=\"upstream\""},
        {"GET", "/version", "", 200, "\"version\""},
        {"POST", "/populate",
         "[{\"name\":\"a\",\"listen\":\"127.0.0.1:0\",\"upstream\":\"127.0.0.1:9\"}]", 201,
         "{\"proxies\":[{\"name\":\"a\""},
        {"POST", "/populate", "[{\"name\":\"b\"}]", 400,
         "missing required field: upstream at proxy 1"},
        {"DELETE", "/proxies/db", "", 204, NULL},
        {"DELETE", "/proxies/db", "", 404, "proxy not found"},
        {"PUT", "/proxies", "", 405, NULL},
        {"GET", "/nope", "", 404, "404 page not found"},
    };
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        http_request req = {.keep_alive = true};
        snprintf(req.method, sizeof req.method, "%s", steps[i].method);
        snprintf(req.path, sizeof req.path, "%s", steps[i].path);
        req.content_length = (long long)strlen(steps[i].body);
        api_response res;
        api_route(&reg, &req, steps[i].body, strlen(steps[i].body), &res);
        char *text = strndup(res.body != NULL ? res.body : "", res.len);
        if (res.status != steps[i].status ||
            (steps[i].has != NULL && strstr(text, steps[i].has) == NULL))
            fail_msg("%s %s: %d %s (wanted %d with %s)", steps[i].method, steps[i].path, res.status,
                     text, steps[i].status, steps[i].has ? steps[i].has : "-");
        free(text);
        free(res.body);
    }
    registry_close_all(&reg);
    for (int i = 0; i < 100 && sockit_loop_close(loop) != 0; i++)
        sockit_loop_run_once(loop, 0.001);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_corpus_keeps_the_invariants),
        harness_test(test_parser_statuses),
        harness_test(test_routes_answer_as_toxiproxy),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
