/* The address rules of `sockit listen` (--allow, --deny, --allowfile, --denyfile):
 * IPv4 or IPv6 addresses, each with an optional prefix length (CIDR: 10.0.0.0/8,
 * 2001:db8::/32). A peer that matches any deny rule is refused; otherwise, when
 * there is at least one allow rule, only a peer that matches one is let in (ncat's
 * precedence: --allow narrows, --deny removes). IPv4-mapped IPv6 addresses
 * (::ffff:a.b.c.d, how a dual-stack listener sees its IPv4 clients) are matched as
 * the IPv4 address they carry, in peers and in rules alike. Host names are refused:
 * a rule says which packets come in, not what a resolver answered at start.
 * The parsers are pure (no messages, no resolver); only the lists allocate. */
#ifndef SOCKIT_CLI_ACCESS_H
#define SOCKIT_CLI_ACCESS_H

#include <sockit.h>

#include <stdbool.h>
#include <stddef.h>

/* Rules in one list at most (--allow and --allowfile together; --deny likewise):
 * matching is a linear scan, and a list this long is already a firewall's job. */
#define ACCESS_RULES_MAX 10000
/* The longest rule text accepted ("ffff:...:ffff/128" is 43 bytes). */
#define ACCESS_RULE_TEXT_MAX 64

/* An IP address reduced to what rules compare: AF_INET (b[0..3]) or AF_INET6. */
typedef struct access_ip {
    int family;
    unsigned char b[16];
} access_ip;

typedef struct access_rule {
    access_ip ip; /* the host bits past prefix are zero */
    int prefix;   /* 0-32 or 0-128 */
} access_rule;

typedef struct access_list {
    access_rule *allow, *deny;
    size_t nallow, ndeny;
    size_t cap_allow, cap_deny;
} access_list;

/* What access_check decided. */
enum {
    ACCESS_OK = 0,      /* let in */
    ACCESS_DENIED,      /* matches a deny rule */
    ACCESS_NOT_ALLOWED, /* there are allow rules, and none matches */
};

/* The address of a as rules see it (a mapped IPv6 address as IPv4). false for
 * anything but IPv4 and IPv6 (a Unix peer, an empty address). */
bool access_ip_of(const sockit_addr *a, access_ip *out);

/* Parses one rule: "ADDR" or "ADDR/PREFIX", IPv6 optionally in brackets; host bits
 * past the prefix are cleared (10.1.2.3/8 is 10.0.0.0/8). Returns 0, or -1 with a
 * one-line reason naming the text in why[size]: not an address (a host name), a
 * prefix out of range (10.0.0.0/33, ::1/129) or not a number, an empty rule, a scope
 * id. */
int access_rule_parse(const char *text, access_rule *out, char *why, size_t size);
/* The rule's text, "10.0.0.0/8" (an address alone gets its full prefix). */
const char *access_rule_text(const access_rule *r, char *buf, size_t size);
/* True when ip lies within r (same family, the first r->prefix bits equal). */
bool access_rule_match(const access_rule *r, const access_ip *ip);

/* Adds the rules of a comma-separated list ("127.0.0.1, 10.0.0.0/8") to the allow
 * or deny list. Returns 0, or -1 with the reason (the first bad rule, an empty one,
 * the list full, out of memory); rules before the bad one stay added. */
int access_add(access_list *l, bool allow, const char *list, char *why, size_t size);
/* Adds the rules of a file: one list per line (commas or blanks between rules),
 * '#' to the end of the line is a comment. Returns 0; -1 with errno's text when the
 * file cannot be read ("No such file or directory"); -2 with "LINE N: reason" for a
 * bad rule or a line longer than 1024 bytes. */
int access_add_file(access_list *l, bool allow, const char *path, char *why, size_t size);
/* True when the lists hold any rule. */
bool access_any(const access_list *l);
/* The verdict for peer (ACCESS_*); *rule (when not NULL) is set to the deny rule
 * that matched, else NULL. A peer that is not IP is ACCESS_OK: rules are about IP
 * addresses. */
int access_check(const access_list *l, const sockit_addr *peer, const access_rule **rule);
/* Frees the lists; *l is then empty and may be used again. */
void access_free(access_list *l);

#endif
