// Run engine/cuda/kernels.cu on the CPU, for tests on machines without a GPU.
//
// g++ compiles the kernel file itself against this header (engine/cuda/emulation.py), so
// the tests exercise the exact kernel code and the Python launch geometry, not a copy of
// the maths. Each launch runs its blocks one after another; a block's threads are real
// threads that meet at __syncthreads on a barrier, and a thread that skips a
// __syncthreads its block-mates reach is reported (the kernel would be wrong on a GPU).
// Not emulated: warp-level behaviour (the kernels use none) and the memory model.
#pragma once

#include <atomic>
#include <barrier>
#include <cmath>
#include <math.h>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <thread>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

#define DESMOKE_HOST_EMULATION 1
#define __global__
#define __device__
#define __forceinline__ inline
#define DEVICE inline
#define DECLARE_DYNAMIC_SHARED
#define dyn_smem (emu_dynamic_shared)

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
};

inline thread_local dim3 threadIdx;
inline thread_local dim3 blockIdx;
inline dim3 blockDim;
inline dim3 gridDim;
inline unsigned char* emu_dynamic_shared = nullptr;
inline std::barrier<>* emu_barrier = nullptr;
inline std::vector<long>* emu_sync_counts = nullptr;
inline thread_local long emu_sync_count = 0;
inline thread_local unsigned emu_thread = 0;

// Every thread records how many barriers it has reached before arriving; after the
// barrier all counts must agree, otherwise some thread skipped a __syncthreads.
inline void emu_checked_barrier(const char* where) {
    (*emu_sync_counts)[emu_thread] = emu_sync_count;
    emu_barrier->arrive_and_wait();
    for (long count : *emu_sync_counts) {
        if (count != emu_sync_count) {
            std::fprintf(stderr, "host emulation: divergent __syncthreads (%s) in block %u,%u\n",
                         where, blockIdx.x, blockIdx.y);
            std::abort();
        }
    }
    emu_barrier->arrive_and_wait();  // nobody overwrites a count before all have checked
}

inline void __syncthreads() {
    ++emu_sync_count;
    emu_checked_barrier("__syncthreads");
}

inline unsigned __vminu4(unsigned a, unsigned b) {
    unsigned r = 0;
    for (int i = 0; i < 4; ++i) {
        unsigned x = (a >> (8 * i)) & 0xFFu, y = (b >> (8 * i)) & 0xFFu;
        r |= (x < y ? x : y) << (8 * i);
    }
    return r;
}

inline unsigned short emu_f32_to_f16(float v) {
    _Float16 h = (_Float16)v;  // round to nearest even, like cvt.rn.f16.f32
    unsigned short bits;
    std::memcpy(&bits, &h, sizeof bits);
    return bits;
}

inline float emu_f16_to_f32(unsigned short bits) {
    _Float16 h;
    std::memcpy(&h, &bits, sizeof h);
    return (float)h;
}

template <typename... Args, std::size_t... I>
void emu_call(void (*kernel)(Args...), void** args, std::index_sequence<I...>) {
    kernel(*static_cast<std::remove_cv_t<std::remove_reference_t<Args>>*>(args[I])...);
}

// Launch: same arguments as cuLaunchKernel (kernelParams = array of pointers to values).
// Returns 0, or -1 when the argument count does not match the kernel's.
template <typename... Args>
int emu_launch(void (*kernel)(Args...), int nargs, dim3 grid, dim3 block, std::size_t shared,
               void** args) {
    if (nargs != (int)sizeof...(Args)) {
        return -1;
    }
    gridDim = grid;
    blockDim = block;
    const unsigned threads = block.x * block.y * block.z;
    std::vector<unsigned char> shared_memory(shared + 64, 0xCD);  // poisoned, like a GPU's
    emu_dynamic_shared = shared_memory.data();
    std::barrier<> barrier(threads);
    std::vector<long> counts(threads, 0);
    emu_barrier = &barrier;
    emu_sync_counts = &counts;
    std::vector<std::thread> pool;
    pool.reserve(threads);
    for (unsigned t = 0; t < threads; ++t) {
        pool.emplace_back([=]() {
            emu_thread = t;
            threadIdx = dim3{t % block.x, (t / block.x) % block.y, t / (block.x * block.y)};
            emu_sync_count = 0;
            for (unsigned bz = 0; bz < grid.z; ++bz) {
                for (unsigned by = 0; by < grid.y; ++by) {
                    for (unsigned bx = 0; bx < grid.x; ++bx) {
                        blockIdx = dim3{bx, by, bz};
                        emu_call(kernel, args, std::index_sequence_for<Args...>{});
                        ++emu_sync_count;
                        emu_checked_barrier("end of block");
                    }
                }
            }
        });
    }
    for (auto& thread : pool) {
        thread.join();
    }
    emu_barrier = nullptr;
    emu_sync_counts = nullptr;
    return 0;
}

#define EMU_EXPORT(name)                                                                    \
    extern "C" int emu_launch_##name(int nargs, unsigned gx, unsigned gy, unsigned gz,      \
                                     unsigned bx, unsigned by, unsigned bz,                 \
                                     std::size_t shared, void** args) {                     \
        return emu_launch(&name, nargs, dim3{gx, gy, gz}, dim3{bx, by, bz}, shared, args);  \
    }
