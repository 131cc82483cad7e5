// Per-atom kernel of the linear least-squares system; see mtp_linear.h.
#include "mtp_linear.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <iterator>

namespace mlipc {

namespace {

typedef double v4 __attribute__((vector_size(32), aligned(8)));
static_assert(kChunk == 16, "site_linear sums kChunk values as four v4");

// By reference: passing or returning a v4 by value changes the ABI without AVX (-Wpsabi).
inline void load4(v4& v, const double* p) { std::memcpy(&v, p, sizeof v); }
inline void store4(double* p, const v4& v) { std::memcpy(p, &v, sizeof v); }

}  // namespace

namespace {

// Sorted union of two sorted index lists, added into `into`.
void merge_into(std::vector<int>& into, const std::vector<int>& a, const std::vector<int>& b) {
    std::vector<int> ab, out;
    std::set_union(a.begin(), a.end(), b.begin(), b.end(), std::back_inserter(ab));
    std::set_union(into.begin(), into.end(), ab.begin(), ab.end(), std::back_inserter(out));
    into.swap(out);
}

}  // namespace

LinPlan::LinPlan(const MtpPlan& p) {
    nsc = int(p.mapping.size());
    const int nt = int(p.times.size() / 4);
    const int* t = p.times.data();
    // Pass 1: the final pattern of every moment (basic moments depend on themselves).
    std::vector<std::vector<int>> pat(p.nmom);
    for (int a = 0; a < p.nbasic; ++a) pat[a] = {a};
    for (int q = 0; q < nt; ++q) merge_into(pat[t[4 * q + 3]], pat[t[4 * q]], pat[t[4 * q + 1]]);
    pat_off.assign(p.nmom + 1, 0);
    for (int m = 0; m < p.nmom; ++m) {
        pat_off[m + 1] = pat_off[m] + int(pat[m].size());
        pat_idx.insert(pat_idx.end(), pat[m].begin(), pat[m].end());
    }
    auto pos = [&](int m, int a) {
        const int* b = pat_idx.data() + pat_off[m];
        const int* e = pat_idx.data() + pat_off[m + 1];
        return int(std::lower_bound(b, e, a) - pat_idx.data());
    };
    // Pass 2: replay the growth in contraction order, so that a contraction reading a
    // moment before it is complete maps exactly the derivatives present at that point
    // (the others are still zero in the numeric pass and need no entry).
    std::vector<std::vector<int>> now(p.nmom);
    for (int a = 0; a < p.nbasic; ++a) now[a] = {a};
    map_off.assign(nt + 1, 0);
    map_mid.assign(nt, 0);
    for (int q = 0; q < nt; ++q) {
        const int i = t[4 * q], j = t[4 * q + 1], k = t[4 * q + 3];
        for (int a : now[i]) map.insert(map.end(), {pos(i, a), pos(k, a)});
        map_mid[q] = int(map.size() / 2);
        for (int a : now[j]) map.insert(map.end(), {pos(j, a), pos(k, a)});
        map_off[q + 1] = int(map.size() / 2);
        merge_into(now[k], now[i], now[j]);
    }
}

void LinWorkspace::reserve(const MtpPlan& p, const LinPlan& lp, int stride) {
    dval.assign(lp.pat_idx.size(), 0.0);
    const size_t L = (3 * size_t(stride) + kChunk - 1) / kChunk * kChunk;
    P.assign(size_t(p.nbasic) * L, 0.0);
    D.assign(L, 0.0);
    vt.assign(4 * size_t(stride), 0.0);
}

void site_linear(const MtpPlan& p, const LinPlan& lp, const Workspace& ws, LinWorkspace& lw, int i,
                 int n, const double* vec, const int* nb, int64_t n3, double* JF, double* JS) {
    const int s = ws.stride;
    const double* r = ws.r.data();
    const double* u3[3] = {ws.ux.data(), ws.uy.data(), ws.uz.data()};
    const double* f = ws.f.data();
    const double* df = ws.df.data();
    const double* H = ws.H.data();
    const double* mom = ws.mom.data();

    // Forward-mode derivatives dM_m/dM_basic along the contractions.
    double* dv = lw.dval.data();
    std::fill(dv, dv + lw.dval.size(), 0.0);
    for (int a = 0; a < p.nbasic; ++a) dv[lp.pat_off[a]] = 1.0;
    const int nt = int(p.times.size() / 4);
    const int* map = lp.map.data();
    for (int q = 0; q < nt; ++q) {
        const double mult = p.times[4 * q + 2];
        const double ci = mult * mom[p.times[4 * q + 1]], cj = mult * mom[p.times[4 * q]];
        const int mid = lp.map_mid[q];
        for (int e = lp.map_off[q]; e < mid; ++e) dv[map[2 * e + 1]] += ci * dv[map[2 * e]];
        for (int e = mid; e < lp.map_off[q + 1]; ++e) dv[map[2 * e + 1]] += cj * dv[map[2 * e]];
    }

    // Per-site compact layout: rows of sn >= n (a multiple of 4) neighbours, the three
    // rows of a basic moment in one block of L (a multiple of the chunk) values.
    const int sn = (n + 3) / 4 * 4;
    const int L = (3 * sn + kChunk - 1) / kChunk * kChunk;
    double* __restrict invr = lw.vt.data() + 3 * size_t(s);
    double* vt = lw.vt.data();
    for (int j = 0; j < n; ++j) {
        invr[j] = 1.0 / r[j];
        for (int e = 0; e < 3; ++e) vt[e * s + j] = vec[3 * j + e];
    }
    // P[alpha][e][j] = dM_alpha/dv_j,e = u_e (f' H - deg f H / r) + a_e f H_(m - e_d) / r.
    double* __restrict rad = lw.D.data();  // scratch rows, before D is used
    double* __restrict fr = rad + s;
    for (int a = 0; a < p.nbasic; ++a) {
        const int mu = p.basic_mu[a], mo = p.basic_mono[a];
        const double deg = p.basic_deg[a];
        const double* __restrict fa = f + size_t(mu) * s;
        const double* __restrict dfa = df + size_t(mu) * s;
        const double* __restrict ha = H + size_t(mo) * s;
        double* Pa = lw.P.data() + size_t(a) * L;
#pragma omp simd
        for (int j = 0; j < n; ++j) {
            fr[j] = fa[j] * invr[j];
            rad[j] = (dfa[j] - deg * fr[j]) * ha[j];
        }
        for (int e = 0; e < 3; ++e) {
            const int down = p.mono.down[3 * mo + e];
            const double* __restrict ue = u3[e];
            double* __restrict row = Pa + size_t(e) * sn;
            if (down >= 0) {
                const double pw = p.mono.pow[3 * mo + e];
                const double* __restrict hd = H + size_t(down) * s;
#pragma omp simd
                for (int j = 0; j < n; ++j) row[j] = ue[j] * rad[j] + pw * fr[j] * hd[j];
            } else {
#pragma omp simd
                for (int j = 0; j < n; ++j) row[j] = ue[j] * rad[j];
            }
            for (int j = n; j < sn; ++j) row[j] = 0.0;
        }
        for (int j = 3 * sn; j < L; ++j) Pa[j] = 0.0;
    }

    // dB_q/dv_j = sum_{alpha in pattern(q)} dB_q/dM_alpha P[alpha], for every scalar q,
    // a chunk of kChunk values at a time held in registers over the pattern.  Then
    // F_i += dB/dv_j, F_nb -= dB/dv_j and S_xy -= dB/dv_j,x v_j,y (x <= y).
    double* __restrict D = lw.D.data();
    const double* P = lw.P.data();
    const double* vx = vt;
    const double* vy = vt + s;
    const double* vz = vt + 2 * s;
    for (int q = 0; q < lp.nsc; ++q) {
        const int m = p.mapping[q];
        const int b = lp.pat_off[m], e_ = lp.pat_off[m + 1];
        if (b == e_) continue;  // a moment no contraction writes: B_q = 0
        const int* pidx = lp.pat_idx.data() + b;
        const double* g = dv + b;
        const int np = e_ - b;
        for (int c0 = 0; c0 < L; c0 += kChunk) {
            // kChunk = 16 values in four 4-wide registers (GCC/Clang vector extension;
            // plain scalar code where the target has no such registers).
            const double* p0 = P + size_t(pidx[0]) * L + c0;
            v4 a0, a1, a2, a3, x0, x1, x2, x3;
            load4(a0, p0);
            load4(a1, p0 + 4);
            load4(a2, p0 + 8);
            load4(a3, p0 + 12);
            a0 *= g[0];
            a1 *= g[0];
            a2 *= g[0];
            a3 *= g[0];
            for (int x = 1; x < np; ++x) {
                const double* px = P + size_t(pidx[x]) * L + c0;
                const double gx = g[x];
                load4(x0, px);
                load4(x1, px + 4);
                load4(x2, px + 8);
                load4(x3, px + 12);
                a0 += x0 * gx;
                a1 += x1 * gx;
                a2 += x2 * gx;
                a3 += x3 * gx;
            }
            store4(D + c0, a0);
            store4(D + c0 + 4, a1);
            store4(D + c0 + 8, a2);
            store4(D + c0 + 12, a3);
        }
        const double* __restrict d0 = D;
        const double* __restrict d1 = D + sn;
        const double* __restrict d2 = D + 2 * sn;
        double f0 = 0, f1 = 0, f2 = 0, sxx = 0, sxy = 0, sxz = 0, syy = 0, syz = 0, szz = 0;
#pragma omp simd reduction(+ : f0, f1, f2, sxx, sxy, sxz, syy, syz, szz)
        for (int j = 0; j < n; ++j) {
            f0 += d0[j];
            f1 += d1[j];
            f2 += d2[j];
            sxx += d0[j] * vx[j];
            sxy += d0[j] * vy[j];
            sxz += d0[j] * vz[j];
            syy += d1[j] * vy[j];
            syz += d1[j] * vz[j];
            szz += d2[j] * vz[j];
        }
        double* jf = JF + size_t(q) * n3;
        jf[3 * i] += f0;
        jf[3 * i + 1] += f1;
        jf[3 * i + 2] += f2;
        for (int j = 0; j < n; ++j) {
            double* t = jf + 3 * size_t(nb[j]);
            t[0] -= d0[j];
            t[1] -= d1[j];
            t[2] -= d2[j];
        }
        double* js = JS + size_t(q) * 9;
        js[0] -= sxx;
        js[1] -= sxy;
        js[2] -= sxz;
        js[4] -= syy;
        js[5] -= syz;
        js[8] -= szz;
    }
}

}  // namespace mlipc
