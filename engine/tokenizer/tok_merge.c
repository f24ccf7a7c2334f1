/* SPDX-License-Identifier: MIT */
/* Greedy pair merging with a binary heap: O(n log n) per word instead of rescanning all pairs
 * after each merge. Stale heap entries are dropped when popped (their symbols changed). */
#include "tok_impl.h"

/* a before b: higher priority, then the leftmost pair (positions keep text order). */
static int ent_before(const tok_heap_ent *a, const tok_heap_ent *b)
{
    if (a->prio != b->prio) return a->prio > b->prio;
    return a->pos < b->pos;
}

static void heap_push(tok_heap_ent *h, int *n, tok_heap_ent e)
{
    int i = (*n)++;
    while (i > 0) {
        int p = (i - 1) / 2;
        if (!ent_before(&e, &h[p])) break;
        h[i] = h[p];
        i = p;
    }
    h[i] = e;
}

static tok_heap_ent heap_pop(tok_heap_ent *h, int *n)
{
    tok_heap_ent top = h[0], last = h[--(*n)];
    int i = 0;
    for (;;) {
        int c = 2 * i + 1;
        if (c >= *n) break;
        if (c + 1 < *n && ent_before(&h[c + 1], &h[c])) c++;
        if (!ent_before(&h[c], &last)) break;
        h[i] = h[c];
        i = c;
    }
    h[i] = last;
    return top;
}

static void try_pair(tok_sym *s, int pos, tok_heap_ent *h, int *nh, tok_pair_fn fn, const void *ctx)
{
    if (pos < 0 || s[pos].next < 0) return;
    int r = s[pos].next;
    tok_heap_ent e = {.pos = pos, .rpos = r, .left = s[pos].id, .right = s[r].id};
    if (fn(ctx, e.left, e.right, &e.merged, &e.prio)) heap_push(h, nh, e);
}

void tok_merge(tok_sym *s, int n, tok_heap_ent *heap, tok_pair_fn fn, const void *ctx)
{
    int nh = 0;
    for (int i = 0; i + 1 < n; i++)
        try_pair(s, i, heap, &nh, fn, ctx);
    while (nh > 0) {
        tok_heap_ent e = heap_pop(heap, &nh);
        /* Valid only if the pair is still adjacent with the same ids. */
        if (s[e.pos].id != e.left || s[e.pos].next != e.rpos || s[e.rpos].id != e.right) continue;
        int nx = s[e.rpos].next;
        s[e.pos].id = e.merged;
        s[e.pos].next = nx;
        if (nx >= 0) s[nx].prev = e.pos;
        s[e.rpos].id = -1;
        s[e.rpos].next = s[e.rpos].prev = -1;
        try_pair(s, s[e.pos].prev, heap, &nh, fn, ctx);
        try_pair(s, e.pos, heap, &nh, fn, ctx);
    }
}
