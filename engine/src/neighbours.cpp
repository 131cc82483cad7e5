#include "neighbours.h"

#include <algorithm>

namespace mlipc {

void Neighbours::reserve(int max_neighbours, int species_count) {
    const int s = std::max(4, (max_neighbours + 3) / 4 * 4);
    if (s <= stride && int(species_off.size()) >= species_count + 1) return;
    stride = std::max(s, stride);
    tj.assign(stride, 0);
    nb.assign(stride, 0);
    for (auto* v : {&vec, &dv, &delta}) v->assign(3 * size_t(stride), 0.0);
    species_off.assign(std::max<size_t>(species_off.size(), species_count + 1), 0);
    species_next.assign(species_off.size(), 0);
}

int gather_neighbours(const Dataset& ds, double cutoff, int64_t a0, int64_t a, bool by_species, Neighbours& nb) {
    const double rc2 = cutoff * cutoff;
    auto inside = [&](int64_t q) {
        const double* v = &ds.vec[3 * q];
        return v[0] * v[0] + v[1] * v[1] + v[2] * v[2] < rc2;
    };
    auto put = [&](int64_t q, int at) {
        nb.tj[at] = ds.types[a0 + ds.nbr[q]];
        nb.nb[at] = ds.nbr[q];
        for (int e = 0; e < 3; ++e) nb.vec[3 * at + e] = ds.vec[3 * q + e];
    };
    const int64_t begin = ds.pair_offset[a], end = ds.pair_offset[a + 1];
    int n = 0;
    if (!by_species) {
        for (int64_t q = begin; q < end; ++q)
            if (inside(q)) put(q, n++);
        return nb.n = n;
    }
    // Counting sort by species: counts, then running offsets, then placement.
    const int S = int(nb.species_off.size()) - 1;
    std::fill(nb.species_off.begin(), nb.species_off.end(), 0);
    for (int64_t q = begin; q < end; ++q)
        if (inside(q)) ++nb.species_off[ds.types[a0 + ds.nbr[q]] + 1];
    for (int t = 0; t < S; ++t) nb.species_off[t + 1] += nb.species_off[t];
    std::copy(nb.species_off.begin(), nb.species_off.end(), nb.species_next.begin());
    for (int64_t q = begin; q < end; ++q)
        if (inside(q)) put(q, nb.species_next[ds.types[a0 + ds.nbr[q]]]++);
    return nb.n = nb.species_off[S];
}

void scatter_site_gradient(const Neighbours& nb, int i, double* F, double* S) {
    for (int j = 0; j < nb.n; ++j) {
        const double* g = &nb.dv[3 * j];
        const double* v = &nb.vec[3 * j];
        if (F) {
            const int b = nb.nb[j];
            for (int e = 0; e < 3; ++e) {
                F[3 * i + e] += g[e];
                F[3 * b + e] -= g[e];
            }
        }
        if (S)
            for (int x = 0; x < 3; ++x)
                for (int y = 0; y < 3; ++y) S[3 * x + y] -= g[x] * v[y];
    }
}

}  // namespace mlipc
