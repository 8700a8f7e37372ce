/* The provided-buffer ring of the io_uring backend: one per loop, shared by every
 * receive of the loop, so an idle connection holds no buffer (the kernel picks one
 * only when bytes arrive) and the loop's memory grows with what arrives at once, not
 * with the connections it has. liburing 2.3 has no io_uring_setup_buf_ring: the ring
 * is mapped here and registered with io_uring_register_buf_ring. */
#include "uring_internal.h"

#ifdef SOCKIT_HAVE_URING

#include <errno.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/mman.h>

static atomic_bool whole_only;

void sockit__uring_whole_buffers(bool on) { atomic_store(&whole_only, on); }

static int add_slab(uring_bufs *bufs)
{
    size_t slab_bytes = (size_t)bufs->per_slab * bufs->size;
    if (bufs->nslabs == URING_SLABS_MAX || (bufs->nslabs + 1) * slab_bytes > URING_BUF_BYTES ||
        (bufs->nslabs + 1) * bufs->per_slab > URING_BUFS_MAX)
        return -ENOSPC;
    char *slab = sockit__malloc(slab_bytes);
    if (slab == NULL)
        return -ENOMEM;
    unsigned first = bufs->nslabs * bufs->per_slab;
    bufs->slabs[bufs->nslabs++] = slab;
    int mask = io_uring_buf_ring_mask(URING_BUFS_MAX);
    for (unsigned i = 0; i < bufs->per_slab; i++)
        io_uring_buf_ring_add(bufs->br, slab + (size_t)i * bufs->size, bufs->size,
                              (unsigned short)(first + i), mask, (int)i);
    io_uring_buf_ring_advance(bufs->br, (int)bufs->per_slab);
    return 0;
}

int sockit__uring_bufs_open(uring_bufs *bufs, struct io_uring *ring)
{
    memset(bufs, 0, sizeof *bufs);
    bufs->br_bytes = URING_BUFS_MAX * sizeof(struct io_uring_buf);
    void *mem =
        mmap(NULL, bufs->br_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (mem == MAP_FAILED)
        return sockit__failf(-errno, "loop backend uring: mapping the buffer ring");
    bufs->br = mem;
    io_uring_buf_ring_init(bufs->br);
    struct io_uring_buf_reg reg = {
        .ring_addr = (unsigned long)(uintptr_t)mem,
        .ring_entries = URING_BUFS_MAX,
        .bgid = URING_BUF_GROUP,
    };
    /* The kernel's flags field is liburing 2.3's pad (the same 16 bits after bgid). */
    reg.pad = atomic_load(&whole_only) ? 0 : IOU_PBUF_RING_INC;
    int rc = io_uring_register_buf_ring(ring, &reg, 0);
    bufs->incremental = rc == 0 && reg.pad != 0;
    if (rc == -EINVAL && reg.pad != 0) {
        /* A kernel before 6.12: whole buffers per receive. */
        reg.pad = 0;
        rc = io_uring_register_buf_ring(ring, &reg, 0);
    }
    bufs->size = bufs->incremental ? 16384 : 4096;
    bufs->per_slab = bufs->incremental ? 64 : 256;
    if (rc < 0) {
        munmap(mem, bufs->br_bytes);
        bufs->br = NULL;
        return sockit__failf(rc, "loop backend uring: registering a provided-buffer ring%s",
                             rc == -EINVAL   ? " (the kernel has none: 5.19 or later needed)"
                             : rc == -ENOMEM ? " (locked-memory limit too small?)"
                                             : "");
    }
    rc = add_slab(bufs);
    if (rc < 0) {
        io_uring_unregister_buf_ring(ring, URING_BUF_GROUP);
        munmap(mem, bufs->br_bytes);
        bufs->br = NULL;
        return sockit__failf(rc, "loop backend uring: receive buffers");
    }
    return 0;
}

void sockit__uring_bufs_close(uring_bufs *bufs)
{
    /* The ring's exit unregisters it; the memory goes after. */
    for (unsigned i = 0; i < bufs->nslabs; i++)
        sockit__free(bufs->slabs[i]);
    if (bufs->br != NULL)
        munmap(bufs->br, bufs->br_bytes);
    memset(bufs, 0, sizeof *bufs);
}

static char *buffer(uring_bufs *bufs, unsigned bid)
{
    unsigned slab = bid / bufs->per_slab;
    if (slab >= bufs->nslabs)
        return NULL;
    return bufs->slabs[slab] + (size_t)(bid % bufs->per_slab) * bufs->size;
}

char *sockit__uring_bufs_lent(uring_bufs *bufs, unsigned cqe_flags)
{
    if (!(cqe_flags & IORING_CQE_F_BUFFER))
        return NULL;
    unsigned bid = cqe_flags >> IORING_CQE_BUFFER_SHIFT;
    char *buf = buffer(bufs, bid);
    return buf != NULL && bufs->incremental ? buf + bufs->used[bid] : buf;
}

void sockit__uring_bufs_recycle(uring_bufs *bufs, unsigned cqe_flags, int res)
{
    if (!(cqe_flags & IORING_CQE_F_BUFFER))
        return;
    unsigned bid = cqe_flags >> IORING_CQE_BUFFER_SHIFT;
    char *buf = buffer(bufs, bid);
    if (buf == NULL)
        return;
    if (bufs->incremental && (cqe_flags & IORING_CQE_F_BUF_MORE)) {
        /* The kernel goes on in this buffer: its next bytes come after these. */
        bufs->used[bid] += res > 0 ? (uint32_t)res : 0;
        return;
    }
    bufs->used[bid] = 0;
    io_uring_buf_ring_add(bufs->br, buf, bufs->size, (unsigned short)bid,
                          io_uring_buf_ring_mask(URING_BUFS_MAX), 0);
    io_uring_buf_ring_advance(bufs->br, 1);
}

void sockit__uring_bufs_grow(uring_bufs *bufs)
{
    if (!bufs->grow_wanted)
        return;
    bufs->grow_wanted = false;
    /* At the cap, or without memory, the receives that ran out start again on the
     * buffers given back meanwhile: slower, never a byte lost. */
    add_slab(bufs);
}

#endif /* SOCKIT_HAVE_URING */
