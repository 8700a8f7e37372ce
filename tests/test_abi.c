/* Structs of other versions (sockit.h, "Versions and compatibility"): every struct a
 * caller passes in takes size 0 (the base layout), its own sizeof, an older shorter
 * size, and a newer longer one whose unknown bytes are zero; unknown bytes that are
 * not zero are refused with a message naming the struct. The version macros agree
 * with the library. */
#include "harness.h"

#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "loop_harness.h"
#include "sockit_proxy.h"

/* A struct of type T as a newer header would make it: 16 more bytes. */
#define NEWER(T)                                                                                   \
    struct {                                                                                       \
        T s;                                                                                       \
        unsigned char later[16];                                                                   \
    }

static void expect_refused(const char *what)
{
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), what));
    assert_non_null(strstr(sockit_errmsg(), "not zero"));
}

static void test_version_macros_agree_with_the_library(void **state)
{
    (void)state;
    assert_int_equal(sockit_version_number(), SOCKIT_VERSION_NUMBER);
    char text[32];
    snprintf(text, sizeof text, "%d.%d.%d", SOCKIT_VERSION_MAJOR, SOCKIT_VERSION_MINOR,
             SOCKIT_VERSION_PATCH);
    assert_string_equal(sockit_version(), text);
    assert_string_equal(SOCKIT_VERSION_STRING, text);
    assert_true(SOCKIT_VERSION_AT_LEAST(0, 2, 0));
    assert_true(
        SOCKIT_VERSION_AT_LEAST(SOCKIT_VERSION_MAJOR, SOCKIT_VERSION_MINOR, SOCKIT_VERSION_PATCH));
    assert_false(SOCKIT_VERSION_AT_LEAST(SOCKIT_VERSION_MAJOR, SOCKIT_VERSION_MINOR,
                                         SOCKIT_VERSION_PATCH + 1));
    assert_false(SOCKIT_VERSION_AT_LEAST(SOCKIT_VERSION_MAJOR + 1, 0, 0));
}

static void test_create_server_options_of_every_version(void **state)
{
    (void)state;
    NEWER(sockit_server_options) o;
    memset(&o, 0, sizeof o);
    o.s.type = SOCK_DGRAM;
    /* size 0, sizeof, newer with a zero tail: all a UDP server. */
    size_t sizes[] = {0, sizeof o.s, sizeof o};
    for (size_t i = 0; i < 3; i++) {
        o.s.size = sizes[i];
        sockit *s = sockit_create_server("127.0.0.1", 0, &o.s);
        assert_sock(s);
        assert_int_equal(sockit_type(s), SOCK_DGRAM);
        sockit_close(s);
    }
    /* An older, shorter layout: what it lacks takes the default (TCP, here, since
     * type lies past the size). */
    o.s.size = offsetof(sockit_server_options, type);
    sockit *s = sockit_create_server("127.0.0.1", 0, &o.s);
    assert_sock(s);
    assert_int_equal(sockit_type(s), SOCK_STREAM);
    sockit_close(s);
    o.s.size = sizeof o;
    o.later[0] = 1;
    assert_null(sockit_create_server("127.0.0.1", 0, &o.s));
    expect_refused("create_server: options");
    o.s.size = 3;
    assert_null(sockit_create_server("127.0.0.1", 0, &o.s));
    assert_int_equal(sockit_errcode(), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "smaller than the size field"));
}

static int handler(sockit_request *req)
{
    (void)req;
    return 0;
}

static void test_server_config_and_its_callback_tables(void **state)
{
    (void)state;
    NEWER(sockit_server_config) c;
    memset(&c, 0, sizeof c);
    c.s.handler = handler;
    c.s.size = sizeof c;
    sockit_server *srv = sockit_server_new("127.0.0.1", 0, SOCK_STREAM, &c.s);
    assert_non_null(srv);
    assert_ok(sockit_server_close(srv));
    c.later[15] = 7;
    assert_null(sockit_server_new("127.0.0.1", 0, SOCK_STREAM, &c.s));
    expect_refused("sockit_server_new: config");

    c.later[15] = 0;
    c.s.mode = SOCKIT_EVENTS;
    NEWER(sockit_stream_callbacks) cb;
    memset(&cb, 0, sizeof cb);
    cb.s.size = sizeof cb;
    cb.later[2] = 1;
    c.s.stream = &cb.s;
    assert_null(sockit_server_new("127.0.0.1", 0, SOCK_STREAM, &c.s));
    expect_refused("sockit_server_new: stream callbacks");
    NEWER(sockit_datagram_callbacks) dcb;
    memset(&dcb, 0, sizeof dcb);
    dcb.s.size = sizeof dcb;
    dcb.later[1] = 1;
    c.s.stream = NULL;
    c.s.datagram = &dcb.s;
    assert_null(sockit_server_new("127.0.0.1", 0, SOCK_DGRAM, &c.s));
    expect_refused("sockit_server_new: datagram callbacks");
}

static void test_listener_stream_connector_and_datagram_tables(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    NEWER(sockit_stream_callbacks) cb;
    memset(&cb, 0, sizeof cb);
    cb.s.size = sizeof cb;

    int port;
    sockit *l = harness_tcp_listener(AF_INET, &port);
    NEWER(sockit_listener_config) lc;
    memset(&lc, 0, sizeof lc);
    lc.s.size = sizeof lc;
    lc.later[4] = 9;
    assert_null(sockit_listener_new(loop, l, &lc.s));
    expect_refused("listener_new: config");
    lc.later[4] = 0;
    cb.later[0] = 1;
    lc.s.callbacks = &cb.s;
    assert_null(sockit_listener_new(loop, l, &lc.s));
    expect_refused("listener_new: callbacks");
    cb.later[0] = 0;
    sockit_listener *lis = sockit_listener_new(loop, l, &lc.s);
    assert_non_null(lis);
    sockit_listener_close(lis);

    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    cb.later[5] = 1;
    assert_null(sockit_stream_new_fd(loop, p[0], false, &cb.s, NULL));
    expect_refused("stream_new_fd: callbacks");
    assert_null(sockit_stream_connect(loop, "127.0.0.1", port, 1, NULL, &cb.s, NULL, NULL));
    expect_refused("stream_connect: callbacks");
    /* A refused table leaves the stream's own in place. */
    cb.later[5] = 0;
    sockit_stream *st = sockit_stream_new_fd(loop, p[0], false, &cb.s, NULL);
    assert_non_null(st);
    NEWER(sockit_stream_callbacks) bad;
    memset(&bad, 0, sizeof bad);
    bad.s.size = sizeof bad;
    bad.later[9] = 1;
    sockit_stream_set_callbacks(st, &bad.s);
    expect_refused("stream_set_callbacks");
    sockit_stream_close(st, 0);

    NEWER(sockit_datagram_callbacks) dcb;
    memset(&dcb, 0, sizeof dcb);
    dcb.s.size = sizeof dcb;
    dcb.later[3] = 1;
    sockit *u = sockit_socket(AF_INET, SOCK_DGRAM);
    assert_sock(u);
    assert_null(sockit_datagram_new(loop, u, &dcb.s, NULL));
    expect_refused("datagram_new: callbacks");
    sockit_close(u); /* a failed constructor took nothing */

    close_loop(loop);
    close(p[0]);
    close(p[1]);
}

static void test_proxy_config_stats_and_toxic_room(void **state)
{
    (void)state;
    sockit_loop *loop = new_loop();
    NEWER(sockit_proxy_config) pc;
    memset(&pc, 0, sizeof pc);
    pc.s.size = sizeof pc;
    pc.s.upstream_host = "127.0.0.1";
    pc.s.upstream_port = 9;
    pc.later[0] = 1;
    assert_null(sockit_proxy_new(loop, &pc.s));
    expect_refused("proxy: config");
    pc.later[0] = 0;
    sockit_proxy *px = sockit_proxy_new(loop, &pc.s);
    assert_non_null(px);

    /* Filled whole, reserved room zeroed, whatever the struct held before. */
    sockit_proxy_stats st;
    memset(&st, 0xee, sizeof st);
    sockit_proxy_stats_get(px, &st);
    assert_int_equal(st.connections, 0);
    assert_int_equal(st.open, 0);
    assert_int_equal(st.held, 0);
    for (size_t i = 0; i < sizeof st.reserved / sizeof st.reserved[0]; i++)
        assert_int_equal(st.reserved[i], 0);

    sockit_toxic t;
    assert_ok(sockit_toxic_init(&t, SOCKIT_TOXIC_LATENCY, SOCKIT_DOWNSTREAM));
    assert_ok(sockit_toxic_check(&t));
    t.reserved[2] = 5;
    assert_code(sockit_toxic_check(&t), -EINVAL);
    assert_non_null(strstr(sockit_errmsg(), "reserved[2]"));
    assert_code(sockit_proxy_add_toxic(px, &t), -EINVAL);

    sockit_proxy_close(px);
    close_loop(loop);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        harness_test(test_version_macros_agree_with_the_library),
        harness_test(test_create_server_options_of_every_version),
        harness_test(test_server_config_and_its_callback_tables),
        harness_test(test_listener_stream_connector_and_datagram_tables),
        harness_test(test_proxy_config_stats_and_toxic_room),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
