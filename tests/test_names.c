/* Names: getnameinfo, gethostname, getfqdn, gethostbyaddr and the interface calls
 * give what python3's socket module gives on this machine (and what /etc/hosts,
 * /etc/services and uname say), and every bad input fails with its code, a message
 * naming it, and an empty buffer. */
#include "harness.h"
#include "internal.h"

#include <arpa/inet.h>
#include <limits.h>
#include <net/if.h>
#include <netdb.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/utsname.h>
#include <unistd.h>

/* Runs python3 -c CODE (CODE uses double quotes only) and keeps its first line of
 * output in out. Returns its exit status. */
static int python(char *out, size_t size, const char *code)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "timeout 20 python3 -c 'import socket\n%s' 2>&1", code);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    out[0] = '\0';
    if (fgets(out, (int)size, p) == NULL)
        out[0] = '\0';
    out[strcspn(out, "\n")] = '\0';
    char rest[256];
    while (fgets(rest, sizeof rest, p) != NULL)
        ;
    return pclose(p);
}

/* Python's getnameinfo of (host, 80) with flags as "host serv", or "ERR <code>"
 * with the sockit code of its gaierror. */
static void python_nameinfo(const char *host, int flags, char *out, size_t size)
{
    char code[512];
    snprintf(code, sizeof code,
             "try:\n"
             "    h, s = socket.getnameinfo((\"%s\", 80), %d)\n"
             "    print(h, s)\n"
             "except socket.gaierror as e:\n"
             "    print(\"ERR\", e.errno)",
             host, flags);
    char line[512];
    assert_int_equal(python(line, sizeof line, code), 0);
    int eai;
    if (sscanf(line, "ERR %d", &eai) == 1)
        snprintf(out, size, "ERR %d", sockit__from_eai(eai, 0));
    else
        snprintf(out, size, "%s", line);
}

/* The second field of /etc/hosts' first line for ip, or "" when it has none. */
static void hosts_name(const char *ip, char *out, size_t size)
{
    out[0] = '\0';
    FILE *f = fopen("/etc/hosts", "r");
    if (f == NULL)
        return;
    char line[512];
    while (out[0] == '\0' && fgets(line, sizeof line, f) != NULL) {
        char addr[128], name[256];
        if (line[0] != '#' && sscanf(line, "%127s %255s", addr, name) == 2 && strcmp(addr, ip) == 0)
            snprintf(out, size, "%s", name);
    }
    fclose(f);
}

static sockit_addr ip(const char *host, int port)
{
    sockit_addr a;
    assert_ok(sockit_addr_ip(&a, host, port));
    return a;
}

/* Our getnameinfo of (host, 80) in python_nameinfo's form. */
static void our_nameinfo(const char *host, int flags, char *out, size_t size)
{
    sockit_addr a = ip(host, 80);
    char h[SOCKIT_NI_MAXHOST], s[SOCKIT_NI_MAXSERV];
    int rc = sockit_getnameinfo(&a, flags, h, sizeof h, s, sizeof s);
    if (rc < 0)
        snprintf(out, size, "ERR %d", rc);
    else
        snprintf(out, size, "%s %s", h, s);
}

static void test_getnameinfo_numeric_gives_the_address_and_port(void **state)
{
    (void)state;
    char h[SOCKIT_NI_MAXHOST], s[SOCKIT_NI_MAXSERV];
    sockit_addr a = ip("127.0.0.1", 80);
    assert_int_equal(
        sockit_getnameinfo(&a, NI_NUMERICHOST | NI_NUMERICSERV, h, sizeof h, s, sizeof s), 0);
    assert_string_equal(h, "127.0.0.1");
    assert_string_equal(s, "80");
    a = ip("::1", 8080);
    assert_int_equal(
        sockit_getnameinfo(&a, NI_NUMERICHOST | NI_NUMERICSERV, h, sizeof h, s, sizeof s), 0);
    assert_string_equal(h, "::1");
    assert_string_equal(s, "8080");
    /* Either buffer alone. */
    assert_int_equal(sockit_getnameinfo(&a, NI_NUMERICHOST, h, sizeof h, NULL, 0), 0);
    assert_string_equal(h, "::1");
    assert_int_equal(sockit_getnameinfo(&a, NI_NUMERICSERV, NULL, 0, s, sizeof s), 0);
    assert_string_equal(s, "8080");
}

/* /etc/hosts names 127.0.0.1 and /etc/services names port 80, each read here. */
static void test_getnameinfo_names_come_from_hosts_and_services(void **state)
{
    (void)state;
    char want_host[256];
    hosts_name("127.0.0.1", want_host, sizeof want_host);
    struct servent *se = getservbyport(htons(80), "tcp");
    char want_tcp[64];
    snprintf(want_tcp, sizeof want_tcp, "%s", se != NULL ? se->s_name : "80");
    se = getservbyport(htons(80), "udp");
    char want_udp[64];
    snprintf(want_udp, sizeof want_udp, "%s", se != NULL ? se->s_name : "80");

    char h[SOCKIT_NI_MAXHOST], s[SOCKIT_NI_MAXSERV];
    sockit_addr a = ip("127.0.0.1", 80);
    assert_int_equal(sockit_getnameinfo(&a, 0, h, sizeof h, s, sizeof s), 0);
    if (want_host[0] != '\0')
        assert_string_equal(h, want_host);
    assert_string_equal(s, want_tcp);
    assert_int_equal(sockit_getnameinfo(&a, NI_DGRAM, NULL, 0, s, sizeof s), 0);
    assert_string_equal(s, want_udp);
}

/* Every flag the brief names, on IPv4 and IPv6 loopback, as python3 answers. */
static void test_getnameinfo_agrees_with_python(void **state)
{
    (void)state;
    static const char *const hosts[] = {"127.0.0.1", "::1"};
    const int flags[] = {0,        NI_NUMERICHOST, NI_NUMERICSERV,           NI_NAMEREQD,
                         NI_DGRAM, NI_NOFQDN,      NI_NUMERICHOST | NI_DGRAM};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        for (size_t j = 0; j < sizeof flags / sizeof flags[0]; j++) {
            char ours[1200], theirs[1200];
            our_nameinfo(hosts[i], flags[j], ours, sizeof ours);
            python_nameinfo(hosts[i], flags[j], theirs, sizeof theirs);
            if (strcmp(ours, theirs) != 0)
                fail_msg("getnameinfo %s flags 0x%x: ours [%s], python [%s]", hosts[i], flags[j],
                         ours, theirs);
        }
    }
}

/* An address /etc/hosts does not name: NI_NAMEREQD is the resolver's failure (the
 * one python3 raises), without it the numeric form. */
static void test_getnameinfo_namereqd_fails_for_an_address_without_a_name(void **state)
{
    (void)state;
    static const char *const candidates[] = {"127.1.2.3", "127.9.8.7", "127.77.66.55"};
    const char *host = NULL;
    for (size_t i = 0; host == NULL && i < sizeof candidates / sizeof candidates[0]; i++) {
        char name[256];
        hosts_name(candidates[i], name, sizeof name);
        if (name[0] == '\0')
            host = candidates[i];
    }
    if (host == NULL)
        skip();
    sockit_addr a = ip(host, 80);
    char h[SOCKIT_NI_MAXHOST] = "x";
    int rc = sockit_getnameinfo(&a, NI_NAMEREQD, h, sizeof h, NULL, 0);
    char theirs[1200];
    python_nameinfo(host, NI_NAMEREQD, theirs, sizeof theirs);
    int want = 0;
    if (sscanf(theirs, "ERR %d", &want) != 1)
        skip(); /* the resolver names it after all (a DNS PTR record) */
    assert_code(rc, want);
    assert_true(rc <= SOCKIT_EAI_AGAIN && rc >= SOCKIT_EAI_OTHER);
    assert_string_equal(h, "");
    assert_non_null(strstr(sockit_errmsg(), host));
    assert_int_equal(sockit_getnameinfo(&a, 0, h, sizeof h, NULL, 0), 0);
    assert_string_equal(h, host);
}

static void test_getnameinfo_refuses_bad_input(void **state)
{
    (void)state;
    char h[SOCKIT_NI_MAXHOST] = "x", s[SOCKIT_NI_MAXSERV] = "x";
    assert_code(sockit_getnameinfo(NULL, 0, h, sizeof h, s, sizeof s), SOCKIT_EBADADDR);
    assert_string_equal(h, "");
    assert_string_equal(s, "");
    sockit_addr empty;
    memset(&empty, 0, sizeof empty);
    assert_code(sockit_getnameinfo(&empty, 0, h, sizeof h, s, sizeof s), SOCKIT_EBADADDR);

    sockit_addr un;
    assert_ok(sockit_addr_unix(&un, "/tmp/sockit-names.sock"));
    assert_code(sockit_getnameinfo(&un, 0, h, sizeof h, s, sizeof s), -EAFNOSUPPORT);
    assert_non_null(strstr(sockit_errmsg(), "unix:/tmp/sockit-names.sock"));

    sockit_addr a = ip("127.0.0.1", 80);
    assert_code(sockit_getnameinfo(&a, 0, NULL, 0, NULL, 0), -EINVAL);
    assert_code(sockit_getnameinfo(&a, 1 << 20, h, sizeof h, s, sizeof s), SOCKIT_EAI_BADFLAGS);
    assert_non_null(strstr(sockit_errmsg(), "127.0.0.1:80"));
}

/* A buffer one byte short is -ENOSPC and "", never the answer cut. */
static void test_getnameinfo_short_buffers_are_enospc(void **state)
{
    (void)state;
    sockit_addr a = ip("127.0.0.1", 8080);
    char h[SOCKIT_NI_MAXHOST], s[SOCKIT_NI_MAXSERV];
    int f = NI_NUMERICHOST | NI_NUMERICSERV;
    assert_int_equal(sockit_getnameinfo(&a, f, h, 10, s, 5), 0); /* exactly enough */
    assert_string_equal(h, "127.0.0.1");
    assert_code(sockit_getnameinfo(&a, f, h, 9, s, sizeof s), -ENOSPC);
    assert_string_equal(h, "");
    assert_non_null(strstr(sockit_errmsg(), "needs 10 bytes"));
    assert_code(sockit_getnameinfo(&a, f, h, sizeof h, s, 4), -ENOSPC);
    assert_string_equal(h, ""); /* the host that fitted is taken back too */
    assert_string_equal(s, "");
    assert_code(sockit_getnameinfo(&a, f, h, 0, NULL, 0), -ENOSPC);
}

static void test_gethostname_is_the_kernels_and_pythons(void **state)
{
    (void)state;
    struct utsname u;
    assert_int_equal(uname(&u), 0);
    char buf[SOCKIT_NI_MAXHOST];
    int n = sockit_gethostname(buf, sizeof buf);
    assert_ok(n);
    assert_int_equal(n, (int)strlen(buf));
    assert_string_equal(buf, u.nodename);
    char theirs[SOCKIT_NI_MAXHOST];
    assert_int_equal(python(theirs, sizeof theirs, "print(socket.gethostname())"), 0);
    assert_string_equal(buf, theirs);

    char exact[SOCKIT_NI_MAXHOST];
    assert_int_equal(sockit_gethostname(exact, (size_t)n + 1), n);
    assert_string_equal(exact, buf);
    assert_code(sockit_gethostname(exact, (size_t)n), -ENOSPC);
    assert_string_equal(exact, "");
    assert_non_null(strstr(sockit_errmsg(), buf));
    assert_code(sockit_gethostname(exact, 0), -ENOSPC);
    assert_code(sockit_gethostname(NULL, 10), -EINVAL);
}

/* Scripted names for the resolver: "nosuch.test" is not found, "loop.test" is
 * 127.0.0.1; anything else goes to the system's resolver. */
static int scripted(const char *node, const char *service, const struct addrinfo *hints,
                    struct addrinfo **res)
{
    if (node != NULL && strcmp(node, "nosuch.test") == 0)
        return EAI_NONAME;
    if (node != NULL && strcmp(node, "loop.test") == 0)
        node = "127.0.0.1";
    return getaddrinfo(node, service, hints, res);
}

static void test_getfqdn_agrees_with_python(void **state)
{
    (void)state;
    static const char *const names[] = {"",          "localhost", " localhost\t",
                                        "127.0.0.1", "0.0.0.0",   "::"};
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char ours[SOCKIT_NI_MAXHOST], theirs[SOCKIT_NI_MAXHOST], code[256];
        int n = sockit_getfqdn(names[i], ours, sizeof ours);
        assert_ok(n);
        assert_int_equal(n, (int)strlen(ours));
        snprintf(code, sizeof code, "print(socket.getfqdn(\"%s\"))", names[i]);
        assert_int_equal(python(theirs, sizeof theirs, code), 0);
        if (strcmp(ours, theirs) != 0)
            fail_msg("getfqdn '%s': ours [%s], python [%s]", names[i], ours, theirs);
    }
    char self[SOCKIT_NI_MAXHOST], empty[SOCKIT_NI_MAXHOST];
    assert_ok(sockit_getfqdn(NULL, self, sizeof self));
    assert_ok(sockit_getfqdn("", empty, sizeof empty));
    assert_string_equal(self, empty);
}

/* A name the resolver does not know is its own answer (trimmed); one it knows
 * gives the name of its address. */
static void test_getfqdn_unknown_name_is_given_back(void **state)
{
    (void)state;
    sockit__set_getaddrinfo(scripted);
    char buf[SOCKIT_NI_MAXHOST];
    assert_int_equal(sockit_getfqdn("  nosuch.test ", buf, sizeof buf), 11);
    assert_string_equal(buf, "nosuch.test");
    char via[SOCKIT_NI_MAXHOST], direct[SOCKIT_NI_MAXHOST];
    assert_ok(sockit_getfqdn("loop.test", via, sizeof via));
    assert_ok(sockit_getfqdn("127.0.0.1", direct, sizeof direct));
    assert_string_equal(via, direct);
    sockit__set_getaddrinfo(NULL);

    /* Longer than any host name: no lookup, the name itself (or -ENOSPC). */
    char long_name[2000];
    memset(long_name, 'a', sizeof long_name - 1);
    long_name[sizeof long_name - 1] = '\0';
    static char big[4096];
    assert_int_equal(sockit_getfqdn(long_name, big, sizeof big), (int)sizeof long_name - 1);
    assert_string_equal(big, long_name);
    assert_code(sockit_getfqdn(long_name, buf, sizeof buf), -ENOSPC);
    assert_string_equal(buf, "");
}

static void test_getfqdn_refuses_bad_buffers(void **state)
{
    (void)state;
    char buf[4] = "x";
    assert_code(sockit_getfqdn("localhost", NULL, 10), -EINVAL);
    assert_code(sockit_getfqdn("127.0.0.1", buf, 0), -ENOSPC);
    char name[SOCKIT_NI_MAXHOST];
    int n = sockit_getfqdn("127.0.0.1", name, sizeof name);
    assert_ok(n);
    char tight[SOCKIT_NI_MAXHOST];
    assert_code(sockit_getfqdn("127.0.0.1", tight, (size_t)n), -ENOSPC);
    assert_string_equal(tight, "");
    assert_non_null(strstr(sockit_errmsg(), name));
}

/* Python's gethostbyaddr(host) as "name|alias,alias|addr,addr", or "ERR <code>". */
static void python_hostbyaddr(const char *host, char *out, size_t size)
{
    char code[512];
    snprintf(code, sizeof code,
             "try:\n"
             "    n, a, i = socket.gethostbyaddr(\"%s\")\n"
             "    print(n + \"|\" + \",\".join(a) + \"|\" + \",\".join(i))\n"
             "except socket.herror as e:\n"
             "    print(\"HERR\", e.errno)\n"
             "except socket.gaierror as e:\n"
             "    print(\"GERR\", e.errno)",
             host);
    char line[1024];
    assert_int_equal(python(line, sizeof line, code), 0);
    int e;
    /* h_errno values: HOST_NOT_FOUND 1, TRY_AGAIN 2, NO_RECOVERY 3, NO_DATA 4. */
    static const int from_h[] = {SOCKIT_EAI_OTHER, SOCKIT_EAI_NONAME, SOCKIT_EAI_AGAIN,
                                 SOCKIT_EAI_FAIL, SOCKIT_EAI_NODATA};
    /* glibc's gethostbyaddr_r, answering from files alone, reports "not found" with
     * h_errno left 0 (Python: "Resolver Error 0 (no error)"): that is HOST_NOT_FOUND. */
    if (sscanf(line, "HERR %d", &e) == 1 && e == 0)
        e = 1;
    if (strncmp(line, "HERR", 4) == 0)
        snprintf(out, size, "ERR %d", e >= 1 && e <= 4 ? from_h[e] : SOCKIT_EAI_OTHER);
    else if (sscanf(line, "GERR %d", &e) == 1)
        snprintf(out, size, "ERR %d", sockit__from_eai(e, 0));
    else
        snprintf(out, size, "%s", line);
}

static void our_hostbyaddr(const char *host, char *out, size_t size)
{
    sockit_hostent *h = (sockit_hostent *)&h; /* must become NULL on failure */
    int rc = sockit_gethostbyaddr(host, &h);
    if (rc < 0) {
        assert_null(h);
        snprintf(out, size, "ERR %d", rc);
        return;
    }
    assert_non_null(h);
    assert_true(h->naddrs >= 1);
    assert_null(h->aliases[h->naliases]);
    assert_null(h->addrs[h->naddrs]);
    size_t used = (size_t)snprintf(out, size, "%s|", h->name);
    for (size_t i = 0; i < h->naliases; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? "," : "", h->aliases[i]);
    used += (size_t)snprintf(out + used, size - used, "|");
    for (size_t i = 0; i < h->naddrs; i++)
        used += (size_t)snprintf(out + used, size - used, "%s%s", i ? "," : "", h->addrs[i]);
    sockit_freehostent(h);
}

static void test_gethostbyaddr_agrees_with_python(void **state)
{
    (void)state;
    static const char *const hosts[] = {"127.0.0.1", "localhost", "::1", "127.1.2.3"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++) {
        char ours[1024], theirs[1024];
        our_hostbyaddr(hosts[i], ours, sizeof ours);
        python_hostbyaddr(hosts[i], theirs, sizeof theirs);
        if (strcmp(ours, theirs) != 0)
            fail_msg("gethostbyaddr %s: ours [%s], python [%s]", hosts[i], ours, theirs);
    }
    /* The name /etc/hosts gives 127.0.0.1 first, where it gives one. */
    char want[256];
    hosts_name("127.0.0.1", want, sizeof want);
    sockit_hostent *h = NULL;
    assert_int_equal(sockit_gethostbyaddr("127.0.0.1", &h), 0);
    if (want[0] != '\0')
        assert_string_equal(h->name, want);
    assert_string_equal(h->addrs[0], "127.0.0.1");
    sockit_freehostent(h);
}

static void test_gethostbyaddr_refuses_bad_input(void **state)
{
    (void)state;
    sockit_hostent *h = (sockit_hostent *)&h;
    assert_code(sockit_gethostbyaddr(NULL, &h), -EINVAL);
    assert_null(h);
    assert_code(sockit_gethostbyaddr("127.0.0.1", NULL), -EINVAL);
    assert_code(sockit_gethostbyaddr("", &h), SOCKIT_EBADADDR);
    sockit__set_getaddrinfo(scripted);
    h = (sockit_hostent *)&h;
    assert_code(sockit_gethostbyaddr("nosuch.test", &h), SOCKIT_EAI_NONAME);
    assert_null(h);
    assert_non_null(strstr(sockit_errmsg(), "gethostbyaddr nosuch.test"));
    /* A name is looked up by its address. */
    assert_int_equal(sockit_gethostbyaddr("loop.test", &h), 0);
    sockit_hostent *direct = NULL;
    assert_int_equal(sockit_gethostbyaddr("127.0.0.1", &direct), 0);
    assert_string_equal(h->name, direct->name);
    assert_string_equal(h->addrs[0], "127.0.0.1");
    sockit_freehostent(h);
    sockit_freehostent(direct);
    sockit__set_getaddrinfo(NULL);
    sockit_freehostent(NULL);
}

static void test_gethostbyaddr_out_of_memory_is_enomem(void **state)
{
    (void)state;
    sockit_hostent *h = (sockit_hostent *)&h;
    harness_inject(HARNESS_OP(SOCKIT__SYS_ALLOC), ENOMEM, 1, 0);
    assert_code(sockit_gethostbyaddr("127.0.0.1", &h), -ENOMEM);
    assert_null(h);
}

static void test_loopback_interface_name_and_index_round_trip(void **state)
{
    (void)state;
    int index = sockit_if_nametoindex("lo");
    assert_ok(index);
    assert_true(index > 0);
    assert_int_equal((unsigned)index, if_nametoindex("lo"));
    char theirs[64];
    assert_int_equal(python(theirs, sizeof theirs, "print(socket.if_nametoindex(\"lo\"))"), 0);
    assert_int_equal(index, atoi(theirs));
    char name[SOCKIT_IF_NAMESIZE];
    assert_int_equal(sockit_if_indextoname((unsigned)index, name, sizeof name), 2);
    assert_string_equal(name, "lo");
    assert_int_equal(sockit_if_indextoname((unsigned)index, name, 3), 2);
    assert_code(sockit_if_indextoname((unsigned)index, name, 2), -ENOSPC);
    assert_string_equal(name, "");
}

static void test_if_nameindex_lists_what_python_lists(void **state)
{
    (void)state;
    sockit_ifname *list = NULL;
    ssize_t n = sockit_if_nameindex(&list);
    assert_ok(n);
    assert_non_null(list);
    assert_int_equal(list[n].index, 0);
    assert_string_equal(list[n].name, "");
    char ours[4096] = "";
    size_t used = 0;
    bool lo = false;
    for (ssize_t i = 0; i < n; i++) {
        used += (size_t)snprintf(ours + used, sizeof ours - used, "%s%u:%s", i ? "," : "",
                                 list[i].index, list[i].name);
        lo |= strcmp(list[i].name, "lo") == 0 && (int)list[i].index == sockit_if_nametoindex("lo");
        char back[SOCKIT_IF_NAMESIZE];
        assert_ok(sockit_if_indextoname(list[i].index, back, sizeof back));
        assert_string_equal(back, list[i].name);
    }
    assert_true(lo);
    sockit_if_freenameindex(list);
    char theirs[4096];
    assert_int_equal(python(theirs, sizeof theirs,
                            "print(\",\".join(\"%d:%s\" % p for p in socket.if_nameindex()))"),
                     0);
    assert_string_equal(ours, theirs);
    sockit_if_freenameindex(NULL);
}

static void test_interface_calls_refuse_bad_input(void **state)
{
    (void)state;
    assert_code(sockit_if_nametoindex(NULL), -EINVAL);
    assert_code(sockit_if_nametoindex(""), -ENODEV);
    assert_code(sockit_if_nametoindex("nosuch0"), -ENODEV);
    assert_non_null(strstr(sockit_errmsg(), "'nosuch0'"));
    assert_code(sockit_if_nametoindex("a-name-longer-than-fifteen"), -ENODEV);
    assert_non_null(strstr(sockit_errmsg(), "longer"));

    char name[SOCKIT_IF_NAMESIZE] = "x";
    assert_code(sockit_if_indextoname(0, name, sizeof name), -ENXIO);
    assert_string_equal(name, "");
    assert_non_null(strstr(sockit_errmsg(), "index 0"));
    assert_code(sockit_if_indextoname(UINT_MAX, name, sizeof name), -ENXIO);
    assert_code(sockit_if_indextoname((unsigned)INT_MAX, name, sizeof name), -ENXIO);
    assert_non_null(strstr(sockit_errmsg(), "2147483647"));
    assert_code(sockit_if_indextoname(1, NULL, 16), -EINVAL);

    assert_code(sockit_if_nameindex(NULL), -EINVAL);
    sockit_ifname *list = (sockit_ifname *)&list;
    harness_inject(HARNESS_OP(SOCKIT__SYS_ALLOC), ENOMEM, 1, 0);
    assert_code(sockit_if_nameindex(&list), -ENOMEM);
    assert_null(list);
}

/* Names come from /etc/hosts and /etc/services only: a reverse lookup of an address
 * with no name would otherwise ask the configured DNS server, and tests talk to
 * loopback alone. A private mount namespace gets an nsswitch.conf that says so
 * (python3, run from the tests, inherits it and answers from the same files). */
static void resolve_from_files_only(void)
{
    char path[] = "/tmp/sockit-nsswitch-XXXXXX";
    int fd = mkstemp(path);
    if (fd < 0)
        return;
    static const char conf[] = "hosts: files\nservices: files\nnetworks: files\n";
    bool ok = write(fd, conf, sizeof conf - 1) == (ssize_t)(sizeof conf - 1);
    close(fd);
    if (ok && unshare(CLONE_NEWNS) == 0 && mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0)
        ok = mount(path, "/etc/nsswitch.conf", NULL, MS_BIND, NULL) == 0;
    else
        ok = false;
    unlink(path); /* the bind mount keeps the file */
    if (!ok)
        fprintf(stderr, "test_names: could not restrict names to local files (not root?): "
                        "reverse lookups may reach the configured DNS server\n");
}

int main(void)
{
    resolve_from_files_only();
    const struct CMUnitTest tests[] = {
        harness_test(test_getnameinfo_numeric_gives_the_address_and_port),
        harness_test(test_getnameinfo_names_come_from_hosts_and_services),
        harness_test(test_getnameinfo_agrees_with_python),
        harness_test(test_getnameinfo_namereqd_fails_for_an_address_without_a_name),
        harness_test(test_getnameinfo_refuses_bad_input),
        harness_test(test_getnameinfo_short_buffers_are_enospc),
        harness_test(test_gethostname_is_the_kernels_and_pythons),
        harness_test(test_getfqdn_agrees_with_python),
        harness_test(test_getfqdn_unknown_name_is_given_back),
        harness_test(test_getfqdn_refuses_bad_buffers),
        harness_test(test_gethostbyaddr_agrees_with_python),
        harness_test(test_gethostbyaddr_refuses_bad_input),
        harness_fault_test(test_gethostbyaddr_out_of_memory_is_enomem),
        harness_test(test_loopback_interface_name_and_index_round_trip),
        harness_test(test_if_nameindex_lists_what_python_lists),
        harness_fault_test(test_interface_calls_refuse_bad_input),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
