// Generation of the MTP basis of a level: enumerate the contraction graphs, then lower
// each one to MLIP's flat form (basic tensor components and binary products).
#include "mtp_basis.h"

#include <algorithm>
#include <map>
#include <numeric>
#include <set>
#include <stdexcept>
#include <string>
#include <utility>

namespace mlipc {
namespace {

constexpr int kMaxNodes = 4;
constexpr int kMaxRank = 10;
constexpr int kMaxMu = 5;

using Label = std::pair<int, int>;  // (mu, nu)

int label_level(const Label& l) { return 2 + 4 * l.first + l.second; }

// One connected contraction graph; nodes sorted by label, e[i][j] = indices contracted
// between tensors i and j.
struct Graph {
    std::vector<Label> nodes;
    int e[kMaxNodes][kMaxNodes] = {};
    int level = 0;
    std::vector<int> key;  // canonical form, used for ordering and de-duplication
};

std::vector<int> graph_key(const std::vector<Label>& nodes, const int (*e)[kMaxNodes],
                           const int* perm) {
    const int n = int(nodes.size());
    std::vector<int> k{n};
    for (const auto& l : nodes) {
        k.push_back(l.first);
        k.push_back(l.second);
    }
    for (int i = 0; i < n; ++i)
        for (int j = i + 1; j < n; ++j) k.push_back(e[perm[i]][perm[j]]);
    return k;
}

// Smallest edge listing over the node permutations that keep the labels in place, so
// isomorphic graphs get equal keys.
std::vector<int> canonical_key(const std::vector<Label>& nodes, const int (*e)[kMaxNodes]) {
    const int n = int(nodes.size());
    int perm[kMaxNodes];
    std::iota(perm, perm + n, 0);
    std::vector<int> best;
    do {
        bool keeps = true;
        for (int i = 0; i < n; ++i) keeps = keeps && nodes[perm[i]] == nodes[i];
        if (!keeps) continue;
        auto k = graph_key(nodes, e, perm);
        if (best.empty() || k < best) best = std::move(k);
    } while (std::next_permutation(perm, perm + n));
    return best;
}

bool connected(int n, const int (*e)[kMaxNodes]) {
    int seen = 1, stack[kMaxNodes], top = 0;
    stack[top++] = 0;
    while (top) {
        const int u = stack[--top];
        for (int w = 0; w < n; ++w)
            if (e[u][w] && !(seen >> w & 1)) {
                seen |= 1 << w;
                stack[top++] = w;
            }
    }
    return seen == (1 << n) - 1;
}

// Every connected graph (single rank-0 tensors included) of level <= L.
std::vector<Graph> connected_graphs(int L, int mu_max) {
    std::vector<Label> labels;
    for (int mu = 0; mu <= mu_max; ++mu)
        for (int nu = 0; nu <= kMaxRank; ++nu)
            if (label_level({mu, nu}) <= L) labels.push_back({mu, nu});

    std::vector<Graph> out;
    std::set<std::vector<int>> seen;
    for (const auto& l : labels)
        if (l.second == 0) {
            Graph g;
            g.nodes = {l};
            g.level = label_level(l);
            int id = 0;
            g.key = graph_key(g.nodes, g.e, &id);
            out.push_back(g);
        }

    std::vector<Label> ranked;
    for (const auto& l : labels)
        if (l.second > 0) ranked.push_back(l);

    std::vector<Label> nodes;
    int e[kMaxNodes][kMaxNodes] = {};
    int rem[kMaxNodes] = {};
    std::vector<std::pair<int, int>> pairs;

    // Edge multiplicities pair by pair; the last pair of a node takes what it has left.
    auto fill_edges = [&](auto&& self, size_t q) -> void {
        const int n = int(nodes.size());
        if (q == pairs.size()) {
            for (int i = 0; i < n; ++i)
                if (rem[i]) return;
            if (!connected(n, e)) return;
            auto key = canonical_key(nodes, e);
            if (!seen.insert(key).second) return;
            Graph g;
            g.nodes = nodes;
            std::copy(&e[0][0], &e[0][0] + kMaxNodes * kMaxNodes, &g.e[0][0]);
            for (const auto& l : nodes) g.level += label_level(l);
            g.key = std::move(key);
            out.push_back(std::move(g));
            return;
        }
        const int i = pairs[q].first, j = pairs[q].second;
        const bool last_of_i = (j == n - 1);
        const int hi = std::min(rem[i], rem[j]);
        const int lo = last_of_i ? rem[i] : 0;
        for (int v = lo; v <= hi; ++v) {
            e[i][j] = e[j][i] = v;
            rem[i] -= v;
            rem[j] -= v;
            self(self, q + 1);
            rem[i] += v;
            rem[j] += v;
        }
        e[i][j] = e[j][i] = 0;
    };

    // Label multisets (non-decreasing sequences) of 2..kMaxNodes ranked tensors.
    auto choose_nodes = [&](auto&& self, size_t start, int budget) -> void {
        const int n = int(nodes.size());
        if (n >= 2) {
            int sum = 0, mx = 0;
            for (const auto& l : nodes) {
                sum += l.second;
                mx = std::max(mx, l.second);
            }
            // A loopless multigraph needs an even degree sum, no node above the rest,
            // and n - 1 edges to be connected.
            if (sum % 2 == 0 && 2 * mx <= sum && sum >= 2 * (n - 1)) {
                pairs.clear();
                for (int i = 0; i < n; ++i)
                    for (int j = i + 1; j < n; ++j) pairs.push_back({i, j});
                for (int i = 0; i < n; ++i) rem[i] = nodes[i].second;
                fill_edges(fill_edges, 0);
            }
        }
        if (n == kMaxNodes) return;
        for (size_t t = start; t < ranked.size(); ++t)
            if (label_level(ranked[t]) <= budget) {
                nodes.push_back(ranked[t]);
                self(self, t, budget - label_level(ranked[t]));
                nodes.pop_back();
            }
    };
    choose_nodes(choose_nodes, 0, L);

    std::sort(out.begin(), out.end(), [](const Graph& a, const Graph& b) {
        if (a.level != b.level) return a.level < b.level;
        return a.key < b.key;
    });
    return out;
}

// The multisets of `rank` indices over x, y, z as powers (a, b, c), in MLIP's order.
std::vector<std::array<int, 3>> index_multisets(int rank) {
    std::vector<std::array<int, 3>> m;
    for (int a = rank; a >= 0; --a)
        for (int b = rank - a; b >= 0; --b) m.push_back({a, b, rank - a - b});
    return m;
}

int multinomial(const std::array<int, 3>& m) {
    static const int fact[] = {1, 1, 2, 6, 24, 120, 720, 5040, 40320, 362880, 3628800};
    return fact[m[0] + m[1] + m[2]] / (fact[m[0]] * fact[m[1]] * fact[m[2]]);
}

// A tensor made of symmetric index groups; each component (one multiset per group) is
// one of MLIP's scalar moments.
struct Tensor {
    std::vector<int> groups;
    std::map<std::vector<int>, int> component;
};

// Calls f(choice) for every combination of one entry from each list.
template <class F>
void for_each_combination(const std::vector<std::vector<std::array<int, 3>>>& lists, F&& f) {
    std::vector<size_t> at(lists.size(), 0);
    for (const auto& l : lists)
        if (l.empty()) return;
    while (true) {
        f(at);
        size_t d = 0;
        while (d < lists.size() && ++at[d] == lists[d].size()) at[d++] = 0;
        if (d == lists.size()) return;
    }
}

class Builder {
public:
    explicit Builder(int first_free) : next_(first_free) {}

    // Contracts c[p] indices of group p of `a` with the single group of basic tensor `b`.
    Tensor contract(const Tensor& a, const std::vector<int>& c, const Tensor& b) {
        Tensor r;
        int contracted = 0;
        for (size_t p = 0; p < a.groups.size(); ++p) {
            contracted += c[p];
            if (a.groups[p] > c[p]) r.groups.push_back(a.groups[p] - c[p]);
        }
        const int b_free = b.groups[0] - contracted;
        if (b_free > 0) r.groups.push_back(b_free);

        std::vector<std::vector<std::array<int, 3>>> free_lists, sum_lists;
        for (int g : r.groups) free_lists.push_back(index_multisets(g));
        for (size_t p = 0; p < a.groups.size(); ++p) sum_lists.push_back(index_multisets(c[p]));

        for_each_combination(free_lists, [&](const std::vector<size_t>& fr) {
            std::vector<int> rkey;
            for (size_t g = 0; g < fr.size(); ++g)
                rkey.insert(rkey.end(), free_lists[g][fr[g]].begin(), free_lists[g][fr[g]].end());
            const int k = next_++;
            r.component[rkey] = k;
            for_each_combination(sum_lists, [&](const std::vector<size_t>& sm) {
                std::vector<int> akey;
                std::array<int, 3> bm = {0, 0, 0};
                int mult = 1;
                size_t g = 0;
                for (size_t p = 0; p < a.groups.size(); ++p) {
                    std::array<int, 3> m = sum_lists[p][sm[p]];
                    mult *= multinomial(m);
                    for (int d = 0; d < 3; ++d) bm[d] += m[d];
                    if (a.groups[p] > c[p]) {
                        for (int d = 0; d < 3; ++d) m[d] += free_lists[g][fr[g]][d];
                        ++g;
                    }
                    akey.insert(akey.end(), m.begin(), m.end());
                }
                if (b_free > 0)
                    for (int d = 0; d < 3; ++d) bm[d] += free_lists[g][fr[g]][d];
                const std::vector<int> bkey(bm.begin(), bm.end());
                times.push_back({a.component.at(akey), b.component.at(bkey), mult, k});
            });
        });
        return r;
    }

    int product(int i, int j) {
        const int k = next_++;
        times.push_back({i, j, 1, k});
        return k;
    }

    int moments_count() const { return next_; }

    std::vector<std::array<int, 4>> times;

private:
    int next_;
};

// Products computed when contracting the nodes of g in `order`, tensor by tensor.
long contraction_terms(const Graph& g, const std::vector<int>& order) {
    auto sym = [](long r) { return (r + 1) * (r + 2) / 2; };
    long terms = 0;
    for (size_t s = 1; s < order.size(); ++s) {
        const int v = order[s];
        long t = 1;
        int to_v = 0;
        for (size_t q = 0; q < s; ++q) {
            const int u = order[q];
            int free_u = g.nodes[u].second;
            for (size_t w = 0; w < s; ++w) free_u -= g.e[u][order[w]];
            t *= sym(g.e[u][v]) * sym(free_u - g.e[u][v]);
            to_v += g.e[u][v];
        }
        terms += t * sym(g.nodes[v].second - to_v);
    }
    return terms;
}

}  // namespace

MtpBasis generate_mtp_basis(int level) {
    if (level < kMtpMinLevel || level > kMtpMaxLevel || level % 2)
        throw std::invalid_argument("MTP level must be an even number from " +
                                    std::to_string(kMtpMinLevel) + " to " +
                                    std::to_string(kMtpMaxLevel) + ", got " +
                                    std::to_string(level));
    MtpBasis out;
    out.level = level;
    const int mu_max = std::min(kMaxMu, (level - 2) / 4);
    out.radial_funcs_count = mu_max + 1;

    const std::vector<Graph> comps = connected_graphs(level, mu_max);

    // Scalars: multisets of connected graphs within the level and node limits.
    std::vector<std::vector<int>> scalars;
    std::vector<int> cur;
    auto choose = [&](auto&& self, size_t start, int budget, int nodes_left) -> void {
        for (size_t t = start; t < comps.size(); ++t) {
            const int nn = int(comps[t].nodes.size());
            if (comps[t].level > budget || nn > nodes_left) continue;
            cur.push_back(int(t));
            scalars.push_back(cur);
            self(self, t, budget - comps[t].level, nodes_left - nn);
            cur.pop_back();
        }
    };
    choose(choose, 0, level, kMaxNodes);
    auto scalar_level = [&](const std::vector<int>& s) {
        int l = 0;
        for (int t : s) l += comps[t].level;
        return l;
    };
    std::stable_sort(scalars.begin(), scalars.end(),
                     [&](const auto& a, const auto& b) { return scalar_level(a) < scalar_level(b); });

    // Basic moments: every component of every tensor that some graph uses.
    std::set<Label> used;
    for (const auto& g : comps) used.insert(g.nodes.begin(), g.nodes.end());
    std::map<Label, Tensor> basic;
    for (const auto& l : used) {
        Tensor t;
        t.groups = {l.second};
        for (const auto& m : index_multisets(l.second)) {
            t.component[{m[0], m[1], m[2]}] = int(out.alpha_index_basic.size());
            out.alpha_index_basic.push_back({l.first, m[0], m[1], m[2]});
        }
        basic[l] = std::move(t);
    }

    Builder build(int(out.alpha_index_basic.size()));

    // Each connected graph contracted tensor by tensor, in the order with the fewest
    // products whose every prefix is connected; intermediate tensors shared by prefix.
    std::map<std::vector<int>, Tensor> prefix_cache;
    std::vector<int> comp_moment(comps.size());
    for (size_t gi = 0; gi < comps.size(); ++gi) {
        const Graph& g = comps[gi];
        const int n = int(g.nodes.size());
        if (n == 1) {
            comp_moment[gi] = basic.at(g.nodes[0]).component.at({0, 0, 0});
            continue;
        }
        std::vector<int> order(n), best;
        std::iota(order.begin(), order.end(), 0);
        long best_terms = -1;
        do {
            bool ok = true;
            for (int s = 1; s < n && ok; ++s) {
                bool linked = false;
                for (int q = 0; q < s; ++q) linked = linked || g.e[order[q]][order[s]];
                ok = linked;
            }
            if (!ok) continue;
            const long t = contraction_terms(g, order);
            if (best_terms < 0 || t < best_terms) {
                best_terms = t;
                best = order;
            }
        } while (std::next_permutation(order.begin(), order.end()));

        const Tensor* acc = &basic.at(g.nodes[best[0]]);
        for (int s = 1; s < n; ++s) {
            std::vector<int> key{s + 1};
            for (int q = 0; q <= s; ++q) {
                const int u = best[q];
                int free_u = g.nodes[u].second;
                for (int w = 0; w <= s; ++w) free_u -= g.e[u][best[w]];
                key.insert(key.end(), {g.nodes[u].first, g.nodes[u].second, free_u});
            }
            for (int q = 0; q <= s; ++q)
                for (int w = q + 1; w <= s; ++w) key.push_back(g.e[best[q]][best[w]]);
            auto it = prefix_cache.find(key);
            if (it == prefix_cache.end()) {
                // Groups of acc: the processed tensors with indices still free, in order.
                std::vector<int> c;
                for (int q = 0; q < s; ++q) {
                    const int u = best[q];
                    int free_u = g.nodes[u].second;
                    for (int w = 0; w < s; ++w) free_u -= g.e[u][best[w]];
                    if (free_u > 0) c.push_back(g.e[u][best[s]]);
                }
                Tensor next = build.contract(*acc, c, basic.at(g.nodes[best[s]]));
                it = prefix_cache.emplace(std::move(key), std::move(next)).first;
            }
            acc = &it->second;
        }
        comp_moment[gi] = acc->component.at({});
    }

    // Products of connected graphs, built up factor by factor so prefixes are shared.
    std::map<std::vector<int>, int> product_moment;
    auto moment_of = [&](auto&& self, const std::vector<int>& s) -> int {
        if (s.size() == 1) return comp_moment[s[0]];
        auto it = product_moment.find(s);
        if (it != product_moment.end()) return it->second;
        const std::vector<int> head(s.begin(), s.end() - 1);
        const int k = build.product(self(self, head), comp_moment[s.back()]);
        product_moment[s] = k;
        return k;
    };
    for (const auto& s : scalars) out.alpha_moment_mapping.push_back(moment_of(moment_of, s));

    out.alpha_index_times = std::move(build.times);
    out.alpha_moments_count = build.moments_count();
    return out;
}

}  // namespace mlipc
