#include "etn_plan.h"

#include <algorithm>
#include <string>

#include "errors.h"
#include "etn_model.h"

namespace mlipc {

namespace {

// Copies of irrep L on bond b (h_0 and h_K are one scalar).
int bond_rank(const EtnModel& m, int b, int L) {
    if (b == 0 || b == m.n_cores()) return L == 0 ? 1 : 0;
    return m.ranks[b - 1][L];
}

}  // namespace

EtnPlan::EtnPlan(const EtnModel& m)
    : S(m.species_count), lmax(m.lmax), K(m.n_cores()), nrb(m.radial.size), mono(m.lmax), Y(m.lmax, mono),
      cg(Y, mono) {
    // Channels (l, c), c < the most any core reads at l, and their features in X.
    std::vector<int> first(lmax + 1);
    for (int l = 0; l <= lmax; ++l) {
        first[l] = n_channels;
        int count = 0;
        for (int k = 0; k < K; ++k) count = std::max(count, m.shape[k][l]);
        for (int c = 0; c < count; ++c) {
            chan_l.push_back(l);
            chan_x.push_back(n_x);
            n_x += 2 * l + 1;
            ++n_channels;
        }
    }
    // Bond layout: irreps L ascending, copies a, components M.
    std::vector<std::vector<int>> Loff(K + 1, std::vector<int>(lmax + 1));
    int total = 0;
    for (int b = 0; b <= K; ++b) {
        bond_off.push_back(total);
        for (int L = 0; L <= lmax; ++L) {
            Loff[b][L] = total;
            total += bond_rank(m, b, L) * (2 * L + 1);
        }
    }
    bond_off.push_back(total);
    // Core inputs: the constant 1 (X[0]) first at l = 0 of every core but the last, then
    // the first shape[k][l] channels of order l.
    std::vector<std::vector<int>> in_first(K, std::vector<int>(lmax + 1)), in_count = in_first;
    for (int k = 0; k < K; ++k)
        for (int l = 0; l <= lmax; ++l) {
            in_first[k][l] = int(xoff.size());
            if (l == 0 && k < K - 1) xoff.push_back(0);
            for (int c = 0; c < m.shape[k][l]; ++c) xoff.push_back(chan_x[first[l] + c]);
            in_count[k][l] = int(xoff.size()) - in_first[k][l];
        }
    paths.resize(K);
    core_size.assign(K, 0);
    for (int k = 0; k < K; ++k) {
        for (int L = 0; L <= lmax; ++L)
            for (int l = 0; l <= lmax; ++l)
                for (int Lp = 0; Lp <= lmax; ++Lp) {
                    const int rin = bond_rank(m, k, L), nin = in_count[k][l], rout = bond_rank(m, k + 1, Lp);
                    if (!rin || !nin || !rout || !cg.allowed(L, l, Lp)) continue;
                    const int i = cg.index(L, l, Lp);
                    EtnPath p{L, l, Lp, rin, nin, rout, Loff[k][L], Loff[k + 1][Lp], in_first[k][l],
                              cg.off[i], cg.off[i + 1], core_size[k], 0};
                    core_size[k] += size_t(rin) * nin * rout;
                    paths[k].push_back(p);
                }
        if (paths[k].empty())
            throw format_error("ETN core " + std::to_string(k + 1) + " couples nothing: no L x l -> L' with "
                               "L + l + L' even between its incoming bond, its channels and its outgoing bond "
                               "(check shape and ranks)");
    }
    // Parameter vector: radial, cores 1 .. K-1, species, core K (E is linear in the last two).
    n_radial = size_t(S) * S * n_channels * nrb;
    size_t off = n_radial;
    core_param.assign(K, 0);
    for (int k = 0; k + 1 < K; ++k) {
        core_param[k] = off;
        off += core_size[k];
    }
    species_param = off;
    off += S;
    core_param[K - 1] = off;
    n_params = off + core_size[K - 1];
    for (int k = 0; k < K; ++k)
        for (auto& p : paths[k]) p.g = core_param[k] + p.w;
}

}  // namespace mlipc
