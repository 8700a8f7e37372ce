/* Configure-time probe (tests/CMakeLists.txt): can this machine set up a ring with
 * poll operations? Exit 0 if so. A kernel or container that refuses io_uring
 * (seccomp, the io_uring_disabled sysctl) gets no uring test entries. */
#include <liburing.h>

int main(void)
{
    struct io_uring ring;
    if (io_uring_queue_init(8, &ring, 0) < 0)
        return 1;
    struct io_uring_probe *p = io_uring_get_probe_ring(&ring);
    int ok = p != NULL && io_uring_opcode_supported(p, IORING_OP_POLL_ADD);
    if (p != NULL)
        io_uring_free_probe(p);
    io_uring_queue_exit(&ring);
    return ok ? 0 : 1;
}
