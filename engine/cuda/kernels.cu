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
//   resize_to_input   cv2.resize(frame, INTER_AREA) as uint8 (exact area average, rounded
//                     once, ties as cv2 breaks them), then * (1/255): the pipeline's small_f.
//                     Upscaling uses bilinear (cv2 INTER_LINEAR coordinates) in float.
//   dark_channel_small  dark_channel(small_f, patch): min over RGB, square min filter,
//                     replicated border -> channel 3 of the network input.
//   dark_mask_rows/cols  dark_channel(frame, patch) at display resolution (uint8), as a
//                     separable min filter with van Herk/Gil-Werman: a few comparisons a
//                     pixel whatever the patch size (63 px at 1080p, 127 px at 4K).
//   restore_smoke_layer  engine.restore: alpha = clip(a_up * gray + b_up, 0, 1) with the
//                     guided-filter coefficients a (pre-scaled by 1/255: gray is the uint8
//                     grey frame) and b upsampled bilinearly; then J = I g + (-255 alpha g) A,
//                     g = 1 / max(1 - alpha, t_min), rounded and saturated to uint8 like
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
// (cv2's SIMD path for an exact 2x2 reduction computes (sum + 2) >> 2).
DEVICE int div_round(u64 num, u64 den, int ties_up) {
    u64 q = num / den;
    u64 twice_rem = 2 * (num - q * den);
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
// Pre-processing
// ---------------------------------------------------------------------------------------

// Area average of the source cell of output pixel (ox, oy), as uint8 levels (0..255).
// Cell edges in units of 1/dst pixels are integers, so the weights are exact: the result
// is the exact average, rounded once.
DEVICE void area_pixel(const u8* frame, int pitch, int src_h, int src_w, int dst_h, int dst_w,
                       int ox, int oy, int ties_up, int out[3]) {
    long long x_begin = (long long)ox * src_w, x_end = x_begin + src_w;
    long long y_begin = (long long)oy * src_h, y_end = y_begin + src_h;
    int sx0 = (int)(x_begin / dst_w), sx1 = (int)((x_end - 1) / dst_w);
    int sy0 = (int)(y_begin / dst_h), sy1 = (int)((y_end - 1) / dst_h);
    u64 acc[3] = {0, 0, 0};
    for (int sy = sy0; sy <= sy1; ++sy) {
        long long top = (long long)sy * dst_h;
        u32 wy = (u32)((y_end < top + dst_h ? y_end : top + dst_h) -
                       (y_begin > top ? y_begin : top));
        const u8* row = frame + (long long)sy * pitch;
        u32 sum[3] = {0, 0, 0};
        for (int sx = sx0; sx <= sx1; ++sx) {
            long long left = (long long)sx * dst_w;
            u32 wx = (u32)((x_end < left + dst_w ? x_end : left + dst_w) -
                           (x_begin > left ? x_begin : left));
            const u8* p = row + 3 * sx;
            sum[0] += wx * p[0];
            sum[1] += wx * p[1];
            sum[2] += wx * p[2];
        }
        acc[0] += (u64)wy * sum[0];
        acc[1] += (u64)wy * sum[1];
        acc[2] += (u64)wy * sum[2];
    }
    u64 area = (u64)src_w * (u64)src_h;
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
// in [0, 1]; optionally the float32 grey guide (dst_h x dst_w, contiguous) for the
// guided filter. One thread per output pixel. mode: MODE_AREA or MODE_LINEAR; ties_up:
// round area averages' ties up (an exact 2x2 reduction, as cv2 does) instead of to even.
extern "C" __global__ void resize_to_input(const u8* frame, int frame_pitch, int src_h,
                                           int src_w, void* out, int out_half, int stride_c,
                                           int stride_y, int stride_x, int dst_h, int dst_w,
                                           float* guide, int mode, int ties_up) {
    int ox = blockIdx.x * blockDim.x + threadIdx.x;
    int oy = blockIdx.y * blockDim.y + threadIdx.y;
    if (ox >= dst_w || oy >= dst_h) {
        return;  // no __syncthreads in this kernel
    }
    int level[3];
    if (mode == MODE_AREA) {
        area_pixel(frame, frame_pitch, src_h, src_w, dst_h, dst_w, ox, oy, ties_up, level);
    } else {
        linear_pixel(frame, frame_pitch, src_h, src_w, dst_h, dst_w, ox, oy, level);
    }
    // The pipeline multiplies by float32(1/255); so do we (not a division).
    const float scale = 1.0f / 255.0f;
    float v[3];
    long long base = (long long)oy * stride_y + (long long)ox * stride_x;
    for (int c = 0; c < 3; ++c) {
        v[c] = (float)level[c] * scale;
        store_value(out, out_half, base + (long long)c * stride_c, v[c]);
    }
    if (guide) {
        // cv2.cvtColor(float RGB -> GRAY) coefficients (engine.restore.to_gray).
        guide[(long long)oy * dst_w + ox] = (v[0] * 0.299f + v[1] * 0.587f) + v[2] * 0.114f;
    }
}

// Channel 3 of the network input: dark channel of channels 0..2 (min over RGB, square min
// filter of 2 * radius + 1, replicated border). Tile + halo in shared memory; the tiny
// working-resolution image makes the O(radius) row and column passes cheap.
// Dynamic shared memory: ((bw + 2r) * (bh + 2r) + (bh + 2r) * bw) floats.
extern "C" __global__ void dark_channel_small(void* planes, int half, int stride_c, int stride_y,
                                              int stride_x, int h, int w, int radius) {
    const int bw = blockDim.x, bh = blockDim.y;
    const int tile_w = bw + 2 * radius, tile_h = bh + 2 * radius;
    float* channel_min = (float*)dyn_smem;    // tile_h x tile_w
    float* row_min = channel_min + tile_h * tile_w;  // tile_h x bw
    const int tid = threadIdx.y * bw + threadIdx.x, threads = bw * bh;
    const int x0 = blockIdx.x * bw - radius, y0 = blockIdx.y * bh - radius;

    for (int yy = threadIdx.y; yy < tile_h; yy += bh) {  // a row of threads a tile row
        const long long row = (long long)clampi(y0 + yy, 0, h - 1) * stride_y;
        for (int xx = threadIdx.x; xx < tile_w; xx += bw) {
            long long at = row + (long long)clampi(x0 + xx, 0, w - 1) * stride_x;
            float m = fminf(load_value(planes, half, at), load_value(planes, half, at + stride_c));
            channel_min[yy * tile_w + xx] = fminf(m, load_value(planes, half, at + 2LL * stride_c));
        }
    }
    __syncthreads();
    for (int i = tid; i < tile_h * bw; i += threads) {
        const float* src = channel_min + (i / bw) * tile_w + (i % bw);
        float m = src[0];
        for (int k = 1; k <= 2 * radius; ++k) {
            m = fminf(m, src[k]);
        }
        row_min[i] = m;
    }
    __syncthreads();
    int ox = blockIdx.x * bw + threadIdx.x, oy = blockIdx.y * bh + threadIdx.y;
    if (ox < w && oy < h) {
        const float* src = row_min + threadIdx.y * bw + threadIdx.x;
        float m = src[0];
        for (int k = 1; k <= 2 * radius; ++k) {
            m = fminf(m, src[k * bw]);
        }
        long long at = 3LL * stride_c + (long long)oy * stride_y + (long long)ox * stride_x;
        store_value(planes, half, at, m);
    }
}

// The separable min filter's 1-D step (van Herk/Gil-Werman, generalised to segments of
// `len` <= win outputs): every window of a segment [p0, p0 + len) contains the common run
// [p0 + len - 1 - r, p0 + r], so window k is min(suffix of the left part from k, common
// run, prefix of the right part up to k): win + len - 1 loads for len outputs, whatever
// the patch. len = win gives the classic 2 loads an output; a shorter len trades loads
// for more threads (occupancy). Both passes below use it.

// Display mask, pass 1: min over RGB, then the row min filter. A block takes `rows` rows
// of a strip of segments * len outputs; each thread filters one segment in shared memory.
// blockDim.x = rows * segments. Dynamic shared memory:
// rows * (segments * len + 2r) + rows * segments * len bytes.
// `scratch` needs a pitch that is a multiple of 4 and >= the width rounded up to 4.
extern "C" __global__ void dark_mask_rows(const u8* frame, int frame_pitch, int h, int w,
                                          u8* scratch, int scratch_pitch, int radius,
                                          int segments, int len) {
    const int rows = blockDim.x / segments;
    const int strip = segments * len;  // outputs per row in this block
    const int span = strip + 2 * radius;  // inputs per row
    u8* in = dyn_smem;  // rows x span
    u8* out = in + rows * span;  // rows x strip
    const int tid = threadIdx.x;
    const int x0 = blockIdx.x * strip, y0 = blockIdx.y * rows;

    // A row a group of up to 32 threads (neighbours read neighbouring pixels): no integer
    // division a pixel.
    const int lanes = imin(32, blockDim.x), groups = blockDim.x / lanes;
    for (int yy = tid / lanes; yy < rows && tid < groups * lanes; yy += groups) {
        const u8* row = frame + (long long)imin(y0 + yy, h - 1) * frame_pitch;
        for (int xx = tid % lanes; xx < span; xx += lanes) {
            const u8* p = row + 3 * clampi(x0 - radius + xx, 0, w - 1);
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
    for (int i = tid; i < rows * strip; i += blockDim.x) {
        int gy = y0 + i / strip, gx = x0 + i % strip;
        if (gy < h && gx < w) {
            scratch[(long long)gy * scratch_pitch + gx] = out[i];
        }
    }
}

// Display mask, pass 2: the column min filter on 4 columns at once (one 32-bit word,
// __vminu4), one segment of `len` rows per thread; the suffix minima wait in shared
// memory (len * blockDim.x words). No __syncthreads: each thread only touches its own
// shared slots.
extern "C" __global__ void dark_mask_cols(const u8* scratch, int scratch_pitch, int h, int w,
                                          u8* mask, int mask_pitch, int mask_aligned,
                                          int radius, int len) {
    const int t = threadIdx.x;
    const int word = blockIdx.x * blockDim.x + t;
    if (4 * word >= w) {
        return;
    }
    u32* suffix = (u32*)dyn_smem;
    const u8* column = scratch + 4 * word;
    const int y0 = blockIdx.y * len;  // output k of the segment: rows y0 + k - r .. y0 + k + r
#define SCRATCH_WORD(y) (*(const u32*)(column + (long long)clampi((y), 0, h - 1) * scratch_pitch))
    u32 m = 0xFFFFFFFFu;
    for (int y = y0 + len - 1 - radius; y <= y0 + radius; ++y) {  // the common run
        m = __vminu4(m, SCRATCH_WORD(y));
    }
    for (int k = len - 1; k >= 0; --k) {  // left part: suffix minima
        if (k < len - 1) {
            m = __vminu4(m, SCRATCH_WORD(y0 + k - radius));
        }
        suffix[k * blockDim.x + t] = m;
    }
    m = 0xFFFFFFFFu;
    const int valid = imin(4, w - 4 * word);
    for (int k = 0; k < len && y0 + k < h; ++k) {  // right part: prefix minima
        if (k > 0) {
            m = __vminu4(m, SCRATCH_WORD(y0 + radius + k));
        }
        u32 result = __vminu4(suffix[k * blockDim.x + t], m);
        u8* dst = mask + (long long)(y0 + k) * mask_pitch + 4 * word;
        if (valid == 4 && mask_aligned) {
            *(u32*)dst = result;
        } else {
            for (int j = 0; j < valid; ++j) {
                dst[j] = (u8)(result >> (8 * j));
            }
        }
    }
#undef SCRATCH_WORD
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
    float offset = alpha * gain * -255.0f;
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
