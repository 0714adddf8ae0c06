// Fused pre- and post-processing kernels of the desmoke GPU path.
//
// Compiled at run time by NVRTC (engine/cuda/loader.py) for the GPU in use; the launch
// geometry lives in engine/cuda/kernels.py. The same file also compiles with g++ against
// host_emulation.h, so the tests run these exact kernels on the CPU and compare them with
// the NumPy/OpenCV reference (engine.dark_channel, engine.restore, engine.pipeline).
//
// Conventions: frames are interleaved uint8 RGB with a row pitch in bytes; planes are
// float32 (or fp16 bits) addressed with element strides, so one kernel writes NCHW
// (TensorRT) and channels_last (torch) alike. No kernel returns before a __syncthreads.
//
// The maths, and what it matches:
//   input_rgb         cv2.resize(frame, INTER_AREA) as uint8 (exact area average, rounded
//                     once, ties as cv2 breaks them), then * (1/255): the pipeline's small_f.
//                     Upscaling uses bilinear (cv2 INTER_LINEAR coordinates) in float.
//   input_dark        dark_channel(small_f, patch): min over RGB, square min filter,
//                     replicated border -> channel 3 of the network input.
//   mask_rows/cols    dark_channel(frame, patch) at display resolution (uint8), as a
//                     separable min filter with van Herk/Gil-Werman: a few comparisons a
//                     pixel whatever the patch size (63 px at 1080p, 127 px at 4K).
//   restore_smoke_layer  engine.restore: alpha = clip(a_up * gray + b_up, 0, 1) with the
//                     guided-filter coefficients a (pre-scaled by 1/255: gray is the uint8
//                     grey frame) and b upsampled bilinearly; then J = I g + 255 (1 - g) A,
//                     g = 1 / max(1 - alpha, t_min) (-255 alpha g with alpha at most
//                     1 - t_min), rounded and saturated to uint8 like
//                     cv2.add(..., dtype=CV_8U).
//   restore_paper     the `paper` model: the network's change to the image upsampled
//                     bilinearly and added to the full-resolution frame.

#ifndef DESMOKE_HOST_EMULATION
#define DEVICE __device__ __forceinline__
#define DECLARE_DYNAMIC_SHARED extern __shared__ __align__(16) unsigned char dyn_smem[];
#endif

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

DECLARE_DYNAMIC_SHARED

#define MODE_AREA 0
#define MODE_LINEAR 1

DEVICE int imin(int a, int b) { return a < b ? a : b; }
DEVICE int imax(int a, int b) { return a > b ? a : b; }
DEVICE int clampi(int v, int lo, int hi) { return imin(imax(v, lo), hi); }
DEVICE u32 umin(u32 a, u32 b) { return a < b ? a : b; }
DEVICE float clampf(float v, float lo, float hi) { return fminf(fmaxf(v, lo), hi); }

DEVICE u16 f32_to_f16(float v) {
#ifdef DESMOKE_HOST_EMULATION
    return emu_f32_to_f16(v);
#else
    u16 bits;
    asm("cvt.rn.f16.f32 %0, %1;" : "=h"(bits) : "f"(v));
    return bits;
#endif
}

DEVICE float f16_to_f32(u16 bits) {
#ifdef DESMOKE_HOST_EMULATION
    return emu_f16_to_f32(bits);
#else
    float v;
    asm("cvt.f32.f16 %0, %1;" : "=f"(v) : "h"(bits));
    return v;
#endif
}

DEVICE void store_value(void* base, int half, long long index, float v) {
    if (half) {
        ((u16*)base)[index] = f32_to_f16(v);
    } else {
        ((float*)base)[index] = v;
    }
}

DEVICE float load_value(const void* base, int half, long long index) {
    return half ? f16_to_f32(((const u16*)base)[index]) : ((const float*)base)[index];
}

// round(num / den), ties to even (what cvRound does to cv2's area average), or ties up
// (cv2's SIMD path for an exact 2x2 reduction computes (sum + 2) >> 2). In 32 bits when
// both fit (an area sum does up to 4K frames): a 64-bit division is slow on a GPU.
DEVICE int div_round(u64 num, u64 den, int ties_up) {
    u64 q, twice_rem;
    if (((num | den) >> 32) == 0) {
        const u32 q32 = (u32)num / (u32)den;
        q = q32;
        twice_rem = 2ull * ((u32)num - q32 * (u32)den);
    } else {
        q = num / den;
        twice_rem = 2 * (num - q * den);
    }
    if (twice_rem > den || (twice_rem == den && (ties_up || (q & 1)))) {
        ++q;
    }
    return (int)q;
}

// cv2 INTER_LINEAR source coordinate of destination index d (half-pixel centres, edges
// clamped): the two taps i0, i1 and the weight f of i1.
DEVICE void linear_taps(int d, float scale, int n, int* i0, int* i1, float* f) {
    float fx = (d + 0.5f) * scale - 0.5f;
    int s = (int)floorf(fx);
    float frac = fx - (float)s;
    if (s < 0) {
        s = 0;
        frac = 0.0f;
    }
    if (s >= n - 1) {
        s = n - 1;
        frac = 0.0f;
    }
    *i0 = s;
    *i1 = imin(s + 1, n - 1);
    *f = frac;
}

// Horizontal then vertical, as cv2's separable linear resize does.
DEVICE float bilinear(const float* plane, int pitch, int x0, int x1, float fx, int y0, int y1,
                      float fy) {
    const float* r0 = plane + (long long)y0 * pitch;
    const float* r1 = plane + (long long)y1 * pitch;
    float top = r0[x0] * (1.0f - fx) + r0[x1] * fx;
    float bottom = r1[x0] * (1.0f - fx) + r1[x1] * fx;
    return top * (1.0f - fy) + bottom * fy;
}

// cv2.cvtColor(RGB2GRAY) on uint8: 15-bit fixed point, rounded (OpenCV's coefficients;
// tests/test_cuda_kernels.py checks them against the installed cv2 on all 2^24 colours).
DEVICE u32 gray_u8(u32 r, u32 g, u32 b) {
    return (r * 9798u + g * 19235u + b * 3735u + 16384u) >> 15;
}

// ---------------------------------------------------------------------------------------
// Pre-processing: four jobs in two launches
// ---------------------------------------------------------------------------------------
//
// pre_pass_one: the network input's RGB (+ grey guide) beside the display mask's row pass;
// pre_pass_two: the network input's dark channel beside the mask's column pass (each needs
// its first-pass partner finished). At 1080p each job fills less than one wave of a large
// GPU and a launch costs microseconds of its own, so two independent jobs share a launch:
// the grid's first `first_blocks` blocks run the first job, the rest the second. blockIdx
// decides, so a job's __syncthreads stay block-uniform. Every block has blockDim.x threads
// (256: kernels.py BLOCK_THREADS); a job that needs fewer leaves the others idle at its
// barriers. A job is one struct argument, mirrored field by field by ctypes in kernels.py
// (pointers first: no padding between fields); a job with no blocks is all zeros.

struct InputRgbJob {  // frame -> channels 0..2 of the network input (+ the grey guide)
    const u8* frame;
    void* out;
    float* guide;  // float32 dst_h x dst_w, contiguous; null: none
    int grid_x;  // tiles across
    int tile_w;  // outputs a tile row; a tile is tile_w x (blockDim.x / tile_w)
    int frame_pitch, src_h, src_w;
    int out_half, stride_c, stride_y, stride_x;
    int dst_h, dst_w;
    int mode;  // MODE_AREA or MODE_LINEAR
    int ties_up;  // round area averages' ties up (an exact 2x2 reduction, as cv2 does)
};

struct InputDarkJob {  // channel 3 of the network input: the dark channel of channels 0..2
    void* planes;
    int grid_x, tile_w, tile_h;
    int half, stride_c, stride_y, stride_x;
    int h, w, radius;
};

struct MaskRowsJob {  // display mask, pass 1: min over RGB, then the row min filter
    const u8* frame;
    u8* scratch;
    int grid_x;
    int frame_pitch, h, w, scratch_pitch;
    int radius, segments, len, rows;
};

struct MaskColsJob {  // display mask, pass 2: the column min filter
    const u8* scratch;
    u8* mask;
    int grid_x;
    int scratch_pitch, h, w, mask_pitch, mask_aligned;
    int radius, len, threads;
};

// Area average of the source cell of output pixel (ox, oy), as uint8 levels (0..255).
// Cell edges in units of 1/dst pixels are integers, so the weights are exact: the result
// is the exact average, rounded once. Positions fit in 32 bits (kernels.py checks
// dst * src < 2^31): 64-bit divisions are long instruction sequences on a GPU.
DEVICE void area_pixel(const u8* frame, int pitch, int src_h, int src_w, int dst_h, int dst_w,
                       int ox, int oy, int ties_up, int out[3]) {
    const int x_begin = ox * src_w, x_end = x_begin + src_w;
    const int y_begin = oy * src_h, y_end = y_begin + src_h;
    const int sx0 = x_begin / dst_w, sx1 = (x_end - 1) / dst_w;
    const int sy0 = y_begin / dst_h, sy1 = (y_end - 1) / dst_h;
    u64 acc[3] = {0, 0, 0};
    for (int sy = sy0; sy <= sy1; ++sy) {
        const int top = sy * dst_h;
        const u32 wy = (u32)(imin(y_end, top + dst_h) - imax(y_begin, top));
        const u8* row = frame + (long long)sy * pitch;
        u32 sum[3] = {0, 0, 0};
        for (int sx = sx0; sx <= sx1; ++sx) {
            const int left = sx * dst_w;
            const u32 wx = (u32)(imin(x_end, left + dst_w) - imax(x_begin, left));
            const u8* p = row + 3 * sx;
            sum[0] += wx * p[0];
            sum[1] += wx * p[1];
            sum[2] += wx * p[2];
        }
        acc[0] += (u64)wy * sum[0];
        acc[1] += (u64)wy * sum[1];
        acc[2] += (u64)wy * sum[2];
    }
    const u64 area = (u64)src_w * (u64)src_h;
    out[0] = div_round(acc[0], area, ties_up);
    out[1] = div_round(acc[1], area, ties_up);
    out[2] = div_round(acc[2], area, ties_up);
}

DEVICE void linear_pixel(const u8* frame, int pitch, int src_h, int src_w, int dst_h, int dst_w,
                         int ox, int oy, int out[3]) {
    int x0, x1, y0, y1;
    float fx, fy;
    linear_taps(ox, (float)src_w / (float)dst_w, src_w, &x0, &x1, &fx);
    linear_taps(oy, (float)src_h / (float)dst_h, src_h, &y0, &y1, &fy);
    const u8* r0 = frame + (long long)y0 * pitch;
    const u8* r1 = frame + (long long)y1 * pitch;
    for (int c = 0; c < 3; ++c) {
        float top = r0[3 * x0 + c] * (1.0f - fx) + r0[3 * x1 + c] * fx;
        float bottom = r1[3 * x0 + c] * (1.0f - fx) + r1[3 * x1 + c] * fx;
        out[c] = clampi((int)rintf(top * (1.0f - fy) + bottom * fy), 0, 255);
    }
}

// Frame (uint8 RGB, src_h x src_w) -> channels 0..2 of the network input at dst_h x dst_w,
// in [0, 1], and optionally the float32 grey guide for the guided filter. One thread per
// output pixel; no __syncthreads.
DEVICE void input_rgb(InputRgbJob job, int bx, int by) {
    const int tid = threadIdx.x;
    const int ox = bx * job.tile_w + tid % job.tile_w;
    const int oy = by * (int)(blockDim.x / job.tile_w) + tid / job.tile_w;
    if (ox >= job.dst_w || oy >= job.dst_h) {
        return;
    }
    int level[3];
    if (job.mode == MODE_AREA) {
        area_pixel(job.frame, job.frame_pitch, job.src_h, job.src_w, job.dst_h, job.dst_w, ox,
                   oy, job.ties_up, level);
    } else {
        linear_pixel(job.frame, job.frame_pitch, job.src_h, job.src_w, job.dst_h, job.dst_w, ox,
                     oy, level);
    }
    // The pipeline multiplies by float32(1/255); so do we (not a division).
    const float scale = 1.0f / 255.0f;
    float v[3];
    const long long base = (long long)oy * job.stride_y + (long long)ox * job.stride_x;
    for (int c = 0; c < 3; ++c) {
        v[c] = (float)level[c] * scale;
        store_value(job.out, job.out_half, base + (long long)c * job.stride_c, v[c]);
    }
    if (job.guide) {
        // cv2.cvtColor(float RGB -> GRAY) coefficients (engine.restore.to_gray).
        job.guide[(long long)oy * job.dst_w + ox] = (v[0] * 0.299f + v[1] * 0.587f) + v[2] * 0.114f;
    }
}

// Channel 3 of the network input: dark channel of channels 0..2 (min over RGB, square min
// filter of 2 * radius + 1, replicated border). Tile + halo in shared memory; the tiny
// working-resolution image makes the O(radius) row and column passes cheap.
// Dynamic shared memory: ((tile_w + 2r) * (tile_h + 2r) + (tile_h + 2r) * tile_w) floats.
DEVICE void input_dark(InputDarkJob job, int bx, int by) {
    const int bw = job.tile_w, bh = job.tile_h, radius = job.radius;
    const int span_w = bw + 2 * radius, span_h = bh + 2 * radius;
    float* channel_min = (float*)dyn_smem;  // span_h x span_w
    float* row_min = channel_min + span_h * span_w;  // span_h x bw
    const int tid = threadIdx.x, threads = blockDim.x;
    const int x0 = bx * bw - radius, y0 = by * bh - radius;

    for (int i = tid; i < span_h * span_w; i += threads) {
        const int yy = i / span_w, xx = i % span_w;
        const long long at = (long long)clampi(y0 + yy, 0, job.h - 1) * job.stride_y +
                             (long long)clampi(x0 + xx, 0, job.w - 1) * job.stride_x;
        const float m = fminf(load_value(job.planes, job.half, at),
                              load_value(job.planes, job.half, at + job.stride_c));
        channel_min[i] = fminf(m, load_value(job.planes, job.half, at + 2LL * job.stride_c));
    }
    __syncthreads();
    for (int i = tid; i < span_h * bw; i += threads) {
        const float* src = channel_min + (i / bw) * span_w + (i % bw);
        float m = src[0];
        for (int k = 1; k <= 2 * radius; ++k) {
            m = fminf(m, src[k]);
        }
        row_min[i] = m;
    }
    __syncthreads();
    for (int i = tid; i < bh * bw; i += threads) {
        const int ox = bx * bw + i % bw, oy = by * bh + i / bw;
        if (ox < job.w && oy < job.h) {
            const float* src = row_min + i;  // row i / bw of the outputs = halo row + r
            float m = src[0];
            for (int k = 1; k <= 2 * radius; ++k) {
                m = fminf(m, src[k * bw]);
            }
            const long long at = 3LL * job.stride_c + (long long)oy * job.stride_y +
                                 (long long)ox * job.stride_x;
            store_value(job.planes, job.half, at, m);
        }
    }
}

// The separable min filter's 1-D step (van Herk/Gil-Werman, generalised to segments of
// `len` <= win outputs): every window of a segment [p0, p0 + len) contains the common run
// [p0 + len - 1 - r, p0 + r], so window k is min(suffix of the left part from k, common
// run, prefix of the right part up to k): win + len - 1 loads for len outputs, whatever
// the patch. len = win gives the classic 2 loads an output; a shorter len trades loads
// for more threads (occupancy). Both mask passes use it.

// Display mask, pass 1: a block takes `rows` rows of a strip of segments * len outputs;
// each of the first rows * segments threads filters one segment in shared memory.
// Dynamic shared memory: rows * (segments * len + 2r) + rows * segments * len bytes.
// `scratch` needs a pitch that is a multiple of 4 and >= the width rounded up to 4.
DEVICE void mask_rows(MaskRowsJob job, int bx, int by) {
    const int rows = job.rows, segments = job.segments, len = job.len, radius = job.radius;
    const int strip = segments * len;  // outputs per row in this block
    const int span = strip + 2 * radius;  // inputs per row
    u8* in = dyn_smem;  // rows x span
    u8* out = in + rows * span;  // rows x strip
    const int tid = threadIdx.x, threads = blockDim.x;
    const int x0 = bx * strip, y0 = by * rows;

    // A row a group of 32 threads (neighbours read neighbouring pixels): no integer
    // division a pixel.
    const int lanes = imin(32, threads), groups = threads / lanes;
    for (int yy = tid / lanes; yy < rows && tid < groups * lanes; yy += groups) {
        const u8* row = job.frame + (long long)imin(y0 + yy, job.h - 1) * job.frame_pitch;
        for (int xx = tid % lanes; xx < span; xx += lanes) {
            const u8* p = row + 3 * clampi(x0 - radius + xx, 0, job.w - 1);
            in[yy * span + xx] = (u8)umin(umin(p[0], p[1]), p[2]);
        }
    }
    __syncthreads();
    if (tid < rows * segments) {
        // Output k of this segment has the window src[k .. k + 2r].
        const u8* src = in + (tid / segments) * span + (tid % segments) * len;
        u8* dst = out + (tid / segments) * strip + (tid % segments) * len;
        u32 m = 255;
        for (int k = len - 1; k <= 2 * radius; ++k) {  // the common run
            m = umin(m, src[k]);
        }
        for (int k = len - 1; k >= 0; --k) {  // left part: suffix minima
            if (k < len - 1) {
                m = umin(m, src[k]);
            }
            dst[k] = (u8)m;
        }
        m = 255;
        for (int k = 1; k < len; ++k) {  // right part: prefix minima
            m = umin(m, src[2 * radius + k]);
            dst[k] = (u8)umin(dst[k], m);
        }
    }
    __syncthreads();
    for (int i = tid; i < rows * strip; i += threads) {
        const int gy = y0 + i / strip, gx = x0 + i % strip;
        if (gy < job.h && gx < job.w) {
            job.scratch[(long long)gy * job.scratch_pitch + gx] = out[i];
        }
    }
}

// Display mask, pass 2: the column min filter on 4 columns at once (one 32-bit word,
// __vminu4), one segment of `len` rows per thread (the first `threads` of the block); the
// suffix minima wait in shared memory (len * threads words). No __syncthreads: each
// thread only touches its own shared slots.
DEVICE void mask_cols(MaskColsJob job, int bx, int by) {
    const int t = threadIdx.x, threads = job.threads, len = job.len, radius = job.radius;
    const int word = bx * threads + t;
    if (t >= threads || 4 * word >= job.w) {
        return;
    }
    u32* suffix = (u32*)dyn_smem;
    const u8* column = job.scratch + 4 * word;
    const int h = job.h, pitch = job.scratch_pitch;
    const int y0 = by * len;  // output k of the segment: rows y0 + k - r .. y0 + k + r
#define SCRATCH_WORD(y) (*(const u32*)(column + (long long)clampi((y), 0, h - 1) * pitch))
    u32 m = 0xFFFFFFFFu;
    for (int y = y0 + len - 1 - radius; y <= y0 + radius; ++y) {  // the common run
        m = __vminu4(m, SCRATCH_WORD(y));
    }
    for (int k = len - 1; k >= 0; --k) {  // left part: suffix minima
        if (k < len - 1) {
            m = __vminu4(m, SCRATCH_WORD(y0 + k - radius));
        }
        suffix[k * threads + t] = m;
    }
    m = 0xFFFFFFFFu;
    const int valid = imin(4, job.w - 4 * word);
    for (int k = 0; k < len && y0 + k < h; ++k) {  // right part: prefix minima
        if (k > 0) {
            m = __vminu4(m, SCRATCH_WORD(y0 + radius + k));
        }
        const u32 result = __vminu4(suffix[k * threads + t], m);
        u8* dst = job.mask + (long long)(y0 + k) * job.mask_pitch + 4 * word;
        if (valid == 4 && job.mask_aligned) {
            *(u32*)dst = result;
        } else {
            for (int j = 0; j < valid; ++j) {
                dst[j] = (u8)(result >> (8 * j));
            }
        }
    }
#undef SCRATCH_WORD
}

extern "C" __global__ void pre_pass_one(int first_blocks, InputRgbJob rgb, MaskRowsJob rows) {
    const int block = blockIdx.x;
    if (block < first_blocks) {
        input_rgb(rgb, block % rgb.grid_x, block / rgb.grid_x);
    } else {
        const int own = block - first_blocks;
        mask_rows(rows, own % rows.grid_x, own / rows.grid_x);
    }
}

extern "C" __global__ void pre_pass_two(int first_blocks, InputDarkJob dark, MaskColsJob cols) {
    const int block = blockIdx.x;
    if (block < first_blocks) {
        input_dark(dark, block % dark.grid_x, block / dark.grid_x);
    } else {
        const int own = block - first_blocks;
        mask_cols(cols, own % cols.grid_x, own / cols.grid_x);
    }
}

// ---------------------------------------------------------------------------------------
// Post-processing
// ---------------------------------------------------------------------------------------

// The side-by-side panes (original | mask | result) of an export, written in the same pass
// when their pointers are not null (the caller points them into one composite buffer).
DEVICE void write_panes(const u8* px, int x, int y, u8* pane_original, int original_pitch,
                        const u8* mask, int mask_pitch, u8* pane_mask, int pane_mask_pitch) {
    if (pane_original) {
        u8* o = pane_original + (long long)y * original_pitch + 3 * x;
        o[0] = px[0];
        o[1] = px[1];
        o[2] = px[2];
    }
    if (pane_mask && mask) {
        u8 m = mask[(long long)y * mask_pitch + x];
        u8* o = pane_mask + (long long)y * pane_mask_pitch + 3 * x;
        o[0] = m;
        o[1] = m;
        o[2] = m;
    }
}

// engine.restore.restore at full resolution, one thread per pixel.
// coef: a / 255 then b (float32 planes, coef_h x coef_w, contiguous): the guided filter's
// mean coefficients at the working resolution, a scaled to apply to the uint8 grey.
// colour: 3 float32 planes (colour_h x colour_w); a global colour is a 1 x 1 map.
extern "C" __global__ void restore_smoke_layer(
    const u8* frame, int frame_pitch, int h, int w, const float* coef, int coef_h, int coef_w,
    const float* colour, int colour_h, int colour_w, float t_min, u8* out, int out_pitch,
    u8* pane_original, int original_pitch, const u8* mask, int mask_pitch, u8* pane_mask,
    int pane_mask_pitch) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) {
        return;
    }
    const u8* px = frame + (long long)y * frame_pitch + 3 * x;
    float gray = (float)gray_u8(px[0], px[1], px[2]);

    int x0, x1, y0, y1;
    float fx, fy;
    linear_taps(x, (float)coef_w / (float)w, coef_w, &x0, &x1, &fx);
    linear_taps(y, (float)coef_h / (float)h, coef_h, &y0, &y1, &fy);
    float a = bilinear(coef, coef_w, x0, x1, fx, y0, y1, fy);
    float b = bilinear(coef + (long long)coef_h * coef_w, coef_w, x0, x1, fx, y0, y1, fy);
    float alpha = clampf(a * gray + b, 0.0f, 1.0f);

    float gain = 1.0f / fmaxf(1.0f - alpha, t_min);
    float offset = 255.0f - 255.0f * gain;  // -255 alpha gain, alpha at most 1 - t_min
    linear_taps(x, (float)colour_w / (float)w, colour_w, &x0, &x1, &fx);
    linear_taps(y, (float)colour_h / (float)h, colour_h, &y0, &y1, &fy);
    u8* o = out + (long long)y * out_pitch + 3 * x;
    for (int c = 0; c < 3; ++c) {
        const float* plane = colour + (long long)c * colour_h * colour_w;
        float tint = bilinear(plane, colour_w, x0, x1, fx, y0, y1, fy);
        float value = (float)px[c] * gain + offset * tint;
        o[c] = (u8)rintf(clampf(value, 0.0f, 255.0f));  // cvRound + saturation
    }
    write_panes(px, x, y, pane_original, original_pitch, mask, mask_pitch, pane_mask,
                pane_mask_pitch);
}

// The `paper` model: change = (restored - input) * scale at the working resolution,
// upsampled bilinearly and added to the frame (engine.pipeline.Desmoker._run_paper).
// restored: 3 float32 planes (work_h x work_w, contiguous); input: the network input
// (channels 0..2) with element strides; scale = 255 * strength.
extern "C" __global__ void restore_paper(const u8* frame, int frame_pitch, int h, int w,
                                         const float* restored, int work_h, int work_w,
                                         const void* input, int input_half, int stride_c,
                                         int stride_y, int stride_x, float scale, u8* out,
                                         int out_pitch, u8* pane_original, int original_pitch,
                                         const u8* mask, int mask_pitch, u8* pane_mask,
                                         int pane_mask_pitch) {
    int x = blockIdx.x * blockDim.x + threadIdx.x;
    int y = blockIdx.y * blockDim.y + threadIdx.y;
    if (x >= w || y >= h) {
        return;
    }
    const u8* px = frame + (long long)y * frame_pitch + 3 * x;
    int x0, x1, y0, y1;
    float fx, fy;
    linear_taps(x, (float)work_w / (float)w, work_w, &x0, &x1, &fx);
    linear_taps(y, (float)work_h / (float)h, work_h, &y0, &y1, &fy);
    u8* o = out + (long long)y * out_pitch + 3 * x;
    for (int c = 0; c < 3; ++c) {
        const float* plane = restored + (long long)c * work_h * work_w;
        float change[4];
        const int xs[4] = {x0, x1, x0, x1};
        const int ys[4] = {y0, y0, y1, y1};
        for (int k = 0; k < 4; ++k) {
            long long at = (long long)c * stride_c + (long long)ys[k] * stride_y +
                           (long long)xs[k] * stride_x;
            float before = load_value(input, input_half, at);
            change[k] = (plane[(long long)ys[k] * work_w + xs[k]] - before) * scale;
        }
        float top = change[0] * (1.0f - fx) + change[1] * fx;
        float bottom = change[2] * (1.0f - fx) + change[3] * fx;
        float value = top * (1.0f - fy) + bottom * fy + (float)px[c];
        o[c] = (u8)clampf(value, 0.0f, 255.0f);  // truncation, like astype(np.uint8)
    }
    write_panes(px, x, y, pane_original, original_pitch, mask, mask_pitch, pane_mask,
                pane_mask_pitch);
}
