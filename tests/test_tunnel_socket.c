/* sockit_tunnel on a socket the program connected itself, non-blocking: it goes on
 * across calls, says what it waits for, and keeps the target's first bytes; and
 * sockit_proxy_endpoint takes proxy URLs apart. A scripted SOCKS5 proxy in a thread
 * answers in pieces, with pauses, so every wait is met. */
#include "harness.h"

#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

typedef struct {
    sockit *listener;
    unsigned char got[64]; /* what the client sent: greeting and request */
    size_t got_len;
} fake_proxy;

static void pause_ms(int ms) { poll(NULL, 0, ms); }

static void *serve(void *arg)
{
    fake_proxy *p = arg;
    sockit *c = sockit_accept(p->listener, NULL);
    if (c == NULL)
        return NULL;
    assert_ok(sockit_settimeout(c, 5));
    /* Greeting: 5, 1 method, none. */
    size_t n = 0;
    assert_int_equal(sockit_recv_exact(c, p->got, 3, &n), 3);
    pause_ms(50);
    assert_int_equal(sockit_sendall(c, "\x05", 1, 0, NULL), 1);
    pause_ms(50);
    assert_int_equal(sockit_sendall(c, "\x00", 1, 0, NULL), 1);
    /* Request for 127.0.0.1:4242: 10 bytes. */
    assert_int_equal(sockit_recv_exact(c, p->got + 3, 10, &n), 10);
    p->got_len = 13;
    static const unsigned char reply[] = {5, 0, 0, 1, 127, 0, 0, 1, 0x10, 0x92};
    assert_int_equal(sockit_sendall(c, reply, 4, 0, NULL), 4);
    pause_ms(50);
    /* The rest of the reply and the target's first bytes in one segment. */
    unsigned char rest[6 + 5];
    memcpy(rest, reply + 4, 6);
    memcpy(rest + 6, "HELLO", 5);
    assert_int_equal(sockit_sendall(c, rest, sizeof rest, 0, NULL), (ssize_t)sizeof rest);
    char echo[4];
    if (sockit_recv_exact(c, echo, sizeof echo, &n) == (ssize_t)sizeof echo)
        sockit_sendall(c, echo, sizeof echo, 0, NULL);
    sockit_close(c);
    return NULL;
}

static void test_tunnel_goes_on_across_calls_of_a_non_blocking_socket(void **state)
{
    (void)state;
    int port;
    fake_proxy p = {.listener = harness_tcp_listener(AF_INET, &port)};
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, serve, &p), 0);
    sockit *s = sockit_create_connection("127.0.0.1", port, 5, NULL);
    assert_sock(s);
    assert_ok(sockit_setblocking(s, false));
    char url[64];
    snprintf(url, sizeof url, "socks5://127.0.0.1:%d", port);
    int rc, waits = 0;
    double until = harness_now() + 5;
    while ((rc = sockit_tunnel(s, url, "127.0.0.1", 4242)) == SOCKIT_EWOULDBLOCK &&
           harness_now() < until) {
        int want = sockit_tunnel_wants(s);
        assert_true(want == SOCKIT_EVENT_READ || want == SOCKIT_EVENT_WRITE);
        struct pollfd pfd = {.fd = sockit_fileno(s),
                             .events = want == SOCKIT_EVENT_READ ? POLLIN : POLLOUT};
        poll(&pfd, 1, 1000);
        waits++;
    }
    assert_ok(rc);
    assert_true(waits >= 2); /* the proxy's pauses were waited out, not blocked on */
    assert_int_equal(sockit_tunnel_wants(s), 0);
    /* The greeting offered "no authentication" only; the request named the address. */
    static const unsigned char want[] = {5, 1, 0, 5, 1, 0, 1, 127, 0, 0, 1, 0x10, 0x92};
    assert_int_equal(p.got_len, sizeof want);
    assert_memory_equal(p.got, want, sizeof want);
    /* The target's first bytes came with the reply: they are read first. */
    assert_ok(sockit_setblocking(s, true));
    char buf[8];
    size_t got = 0;
    assert_int_equal(sockit_recv_exact(s, buf, 5, &got), 5);
    assert_memory_equal(buf, "HELLO", 5);
    assert_int_equal(sockit_sendall(s, "ping", 4, 0, NULL), 4);
    assert_int_equal(sockit_recv_exact(s, buf, 4, &got), 4);
    assert_memory_equal(buf, "ping", 4);
    pthread_join(th, NULL);
    sockit_close(s);
    sockit_close(p.listener);
}

static void test_tunnel_refuses_what_cannot_work(void **state)
{
    (void)state;
    assert_code(sockit_tunnel(NULL, "socks5://h", "t", 1), -EBADF);
    sockit *u = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(u);
    assert_code(sockit_tunnel(u, "socks5://h", "t", 1), -EOPNOTSUPP);
    sockit_close(u);
    sockit *t = sockit_socket(AF_INET, SOCK_STREAM);
    assert_sock(t);
    assert_code(sockit_tunnel(t, "gopher://h", "t", 1), -EINVAL);
    assert_code(sockit_tunnel(t, "socks5h://h", "t", 0), SOCKIT_EBADPORT);
    assert_code(sockit_tunnel(t, "socks5h://h", "t", 65536), SOCKIT_EBADPORT);
    assert_code(sockit_tunnel(t, "socks5h://h", "", 80), -EINVAL);
    /* Not connected: the first send says so; nothing stays half set up. */
    assert_true(sockit_tunnel(t, "socks5h://h", "t", 80) < 0);
    assert_int_equal(sockit_tunnel_wants(t), 0);
    assert_int_equal(sockit_tunnel_wants(NULL), 0);
    sockit_close(t);
}

static void test_proxy_endpoint_takes_urls_apart(void **state)
{
    (void)state;
    char host[64];
    int port = 0;
    assert_ok(
        sockit_proxy_endpoint("socks5://u:p%40ss@proxy.example:1081", host, sizeof host, &port));
    assert_string_equal(host, "proxy.example");
    assert_int_equal(port, 1081);
    assert_ok(sockit_proxy_endpoint("SOCKS5H://[::1]", host, sizeof host, &port));
    assert_string_equal(host, "::1");
    assert_int_equal(port, 1080);
    assert_ok(sockit_proxy_endpoint("http://10.0.0.1/", host, sizeof host, &port));
    assert_string_equal(host, "10.0.0.1");
    assert_int_equal(port, 3128);
    /* A raw '@' in the password: the last one ends the credentials, as in curl. */
    assert_ok(sockit_proxy_endpoint("http://u:a@b@h:9", host, sizeof host, &port));
    assert_string_equal(host, "h");
    assert_ok(sockit_proxy_endpoint("http://h:9", NULL, 0, NULL));
    char tiny[4];
    assert_code(sockit_proxy_endpoint("http://longhost:9", tiny, sizeof tiny, &port), -ENOSPC);

    static const struct {
        const char *url;
        int code;
    } bad[] = {
        {NULL, -EINVAL},
        {"", -EINVAL},
        {"socks4://h", -EINVAL},
        {"socks5://", -EINVAL},
        {"socks5://h:0", SOCKIT_EBADPORT},
        {"socks5://h:65536", SOCKIT_EBADPORT},
        {"socks5://h:abc", SOCKIT_EBADPORT},
        {"socks5://h:", SOCKIT_EBADPORT},
        {"http://[::1", -EINVAL},
        {"http://[::1]x", -EINVAL},
        {"http://h/path", -EINVAL},
        {"http://h?q", -EINVAL},
        {"socks5://:topsecret@h", -EINVAL},
        {"socks5://u:top%4@h", -EINVAL},
        {"socks5://u:top%00secret@h", -EINVAL},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        int rc = sockit_proxy_endpoint(bad[i].url, host, sizeof host, &port);
        if (rc != bad[i].code)
            fail_msg("%s: %d (%s), want %d", bad[i].url ? bad[i].url : "NULL", rc, sockit_errmsg(),
                     bad[i].code);
        /* A password is never repeated in a message. */
        assert_null(strstr(sockit_errmsg(), "secret"));
        assert_null(strstr(sockit_errmsg(), "top%"));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_tunnel_goes_on_across_calls_of_a_non_blocking_socket),
        harness_test(test_tunnel_refuses_what_cannot_work),
        harness_test(test_proxy_endpoint_takes_urls_apart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
