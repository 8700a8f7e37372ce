/* The -x dump: each line is formatted into one buffer and written with one fputs,
 * so lines from the two directions never interleave mid-line. */
#include "hexdump.h"

void hexdump(FILE *out, char direction, unsigned long long *offset, const void *data, size_t len)
{
    static const char digits[] = "0123456789abcdef";
    const unsigned char *p = data;
    for (size_t at = 0; at < len; at += 16) {
        size_t n = len - at < 16 ? len - at : 16;
        char line[128];
        int w = snprintf(line, sizeof line, "%c %08llx  ", direction, *offset + at);
        char *hex = line + w;
        for (size_t i = 0; i < 16; i++) {
            hex[0] = i < n ? digits[p[at + i] >> 4] : ' ';
            hex[1] = i < n ? digits[p[at + i] & 0xf] : ' ';
            hex[2] = ' ';
            hex += i == 7 ? 4 : 3;
            if (i == 7)
                hex[-1] = ' ';
        }
        *hex++ = ' ';
        *hex++ = '|';
        for (size_t i = 0; i < n; i++) {
            unsigned char c = p[at + i];
            *hex++ = c >= 0x20 && c < 0x7f ? (char)c : '.';
        }
        *hex++ = '|';
        *hex++ = '\n';
        *hex = '\0';
        fputs(line, out);
    }
    *offset += len;
    fflush(out);
}
