/* The compiled loops: a C extension built with the package (see pyproject.toml).
 *
 * Loops that Python would run per row, per test row or per pending contribution, each called with
 * numpy arrays (any C-contiguous buffer of the expected item type), the long ones run without the
 * GIL (walk_claims and dry_wakes make and read Python objects: they hold it):
 *
 *   bit_advance      the bitset step of sum_abm.learners.evaluation.RowBits.advance
 *   sgd_rows         the SGD perceptron sweep of SGDPerceptron.update_rows
 *   sgd_rows_scored  the same sweep with the test accuracy after every row (update_rows_accuracy)
 *   nb_add           Naive Bayes' count update for one sample (MultinomialNB._update)
 *   nb_drift_table   the per-count terms of nb_add's drift bound, for a table it reads
 *   nb_logs          log(counts + alpha) of whole-number counts, read from a table (the same)
 *   nb_binary_weights  a two-class model's weights from such logs (MultinomialNB.score_params)
 *   book_shift       the claim book's score shift after a perceptron mistake (ClaimBook.shift)
 *   walk_scan        the claim walk's candidates in a run of book slots (MarketModel.claim_walk)
 *   walk_claims      the walk's batch: one claim tuple per candidate (MarketModel._walk_claims)
 *   csr_sums         the scores of 0/1 rows (Learner.kernel_scores with ones=True)
 *   track_select     the slots a tracking pass re-predicts (MarketModel._track_pass)
 *   track_apply      that pass's re-predictions of a binary model on 0/1 rows (the same)
 *   dry_wakes        the dry-pool wake-ups that only draw their next wait (MarketModel._skip_idle)
 *
 * sum_abm/learners/_compiled.py documents what each computes and says whether they were built.
 * The float arithmetic is the Python code's, operation for operation and in the same order: built
 * with -ffp-contract=off (no fused multiply-add) and without -ffast-math, so the results equal the
 * numpy paths' bit for bit. One exception: nb_add's return value, a margin-drift bound (a sum of
 * log1p by the C library, in order; numpy's may differ in the last bits), whose users allow far more
 * than that. Out-of-range indices raise IndexError instead of reading outside an array.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <math.h>
#include <stdint.h>
#include <string.h>

#define DONE 0
#define CHANGED 1
#define UNCERTAIN 2
#define NEAR 3
#define EPS 2.220446049250313e-16

/* A signed count: converting it to double is one instruction (an unsigned one is not). */
#define OVERLAP(row, mask, words, c)                                                           \
    do {                                                                                       \
        c = 0;                                                                                 \
        for (Py_ssize_t k_ = 0; k_ < (words); k_++)                                            \
            c += __builtin_popcountll((row)[k_] & (mask)[k_]);                                 \
    } while (0)

/* S[r] += Σ_g values[g]·|row r ∩ masks[g]| + db for every row; counts the rows with S > 0 equal
 * to y_pos and the rows with |S| <= tol. Compiled once per instruction set below. */
#define ADVANCE_ROWS(NAME, ATTR)                                                                \
    ATTR static void NAME(const uint64_t *bits, Py_ssize_t n, Py_ssize_t words,                 \
                          const uint64_t *masks, Py_ssize_t groups, const double *values,       \
                          double db, double *S, const uint8_t *y_pos, double tol,               \
                          int64_t *correct, int64_t *near)                                      \
    {                                                                                           \
        int64_t good = 0, close = 0;                                                            \
        for (Py_ssize_t r = 0; r < n; r++) {                                                    \
            double s = S[r];                                                                    \
            for (Py_ssize_t g = 0; g < groups; g++) {                                           \
                int64_t c;                                                                      \
                OVERLAP(bits + r * words, masks + g * words, words, c);                         \
                s = s + values[g] * (double)c;                                                  \
            }                                                                                   \
            s = s + db;                                                                         \
            S[r] = s;                                                                           \
            good += (s > 0.0) == (y_pos[r] != 0);                                               \
            close += fabs(s) <= tol;                                                            \
        }                                                                                       \
        *correct = good;                                                                        \
        *near = close;                                                                          \
    }

/* The claim book's pass 1 (see book_shift): scores and allowances moved, which signs changed,
 * the largest allowance and the smallest |score| (over every slot, dead ones too, as the numpy
 * path), NaN-propagating as numpy's maximum.reduce and minimum.reduce. */
#define SHIFT_ROWS(NAME, ATTR)                                                                  \
    ATTR static void NAME(const uint64_t *bits, Py_ssize_t lo, Py_ssize_t hi, Py_ssize_t words, \
                          const uint64_t *mask, double step, double istep, double k,            \
                          double *score, double *mag, unsigned char *flip, double *mag_max,     \
                          double *a_min)                                                        \
    {                                                                                           \
        double abs_istep = fabs(istep), mx = -INFINITY, mn = INFINITY;                          \
        int nan = 0;                                                                            \
        for (Py_ssize_t i = lo; i < hi; i++) {                                                  \
            int64_t c;                                                                          \
            OVERLAP(bits + i * words, mask, words, c);                                          \
            double ov = (double)c;                                                              \
            double s0 = score[i];                                                               \
            double d = ov * step;                                                               \
            d = d + istep;                                                                      \
            double s = s0 + d;                                                                  \
            score[i] = s;                                                                       \
            double o = ov * k;                                                                  \
            o = o + abs_istep;                                                                  \
            double m = mag[i] + o;                                                              \
            mag[i] = m;                                                                         \
            flip[i - lo] = (s > 0) != (s0 > 0);                                                 \
            double a = fabs(s);                                                                 \
            nan |= isnan(m) || isnan(a);                                                        \
            mx = m > mx ? m : mx;                                                               \
            mn = a < mn ? a : mn;                                                               \
        }                                                                                       \
        *mag_max = nan ? NAN : mx;                                                              \
        *a_min = nan ? NAN : mn;                                                                \
    }

typedef void (*shift_fn)(const uint64_t *, Py_ssize_t, Py_ssize_t, Py_ssize_t, const uint64_t *,
                         double, double, double, double *, double *, unsigned char *, double *,
                         double *);

typedef void (*advance_fn)(const uint64_t *, Py_ssize_t, Py_ssize_t, const uint64_t *,
                           Py_ssize_t, const double *, double, double *, const uint8_t *, double,
                           int64_t *, int64_t *);

/* On x86-64 the loops are also compiled for the popcnt instruction and for AVX-512's vector
 * popcount (VPOPCNTDQ), and the module picks the best the CPU has when it loads. Whatever the
 * version vectorises, each float operation stays the same IEEE operation on the same operands
 * (never fused: -ffp-contract=off; never reordered: no fast-math), so every version gives the
 * same scores. */
ADVANCE_ROWS(advance_rows_base, )
SHIFT_ROWS(shift_rows_base, )
static advance_fn advance_rows = advance_rows_base; /* both set when the module loads */
static shift_fn shift_rows = shift_rows_base;

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define POPCNT __attribute__((target("popcnt")))
#define VPOPCNT __attribute__((target("popcnt,avx512f,avx512vpopcntdq")))
ADVANCE_ROWS(advance_rows_popcnt, POPCNT)
ADVANCE_ROWS(advance_rows_vpopcnt, VPOPCNT)
SHIFT_ROWS(shift_rows_popcnt, POPCNT)
SHIFT_ROWS(shift_rows_vpopcnt, VPOPCNT)
static void
choose_loops(void)
{
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512vpopcntdq")) {
        advance_rows = advance_rows_vpopcnt;
        shift_rows = shift_rows_vpopcnt;
    } else if (__builtin_cpu_supports("popcnt")) {
        advance_rows = advance_rows_popcnt;
        shift_rows = shift_rows_popcnt;
    }
}
#else
static void
choose_loops(void)
{
}
#endif

/* ---------------------------------------------------------------------------------------------
 * Arguments: buffers checked for their item type, released together. */

enum kind { F64, INDEX, INDEX16, U64, BOOL, BYTE };

typedef struct {
    Py_buffer views[16]; /* the most a call holds: 13 */
    int held;
} Buffers;

static void
release(Buffers *b)
{
    while (b->held > 0)
        PyBuffer_Release(&b->views[--b->held]);
}

/* A C-contiguous view of `obj` whose items are of `kind` (INDEX: a 4- or 8-byte signed integer),
 * writable when asked; NULL with an exception set otherwise. */
static Py_buffer *
view(Buffers *b, PyObject *obj, enum kind kind, int writable, const char *name)
{
    if (b->held == (int)(sizeof b->views / sizeof b->views[0])) {
        PyErr_SetString(PyExc_RuntimeError, "_kernels: too many buffers in one call");
        return NULL;
    }
    Py_buffer *v = &b->views[b->held];
    int flags = PyBUF_C_CONTIGUOUS | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, v, flags) < 0)
        return NULL;
    b->held++;
    const char *f = v->format ? v->format : "B";
    char c = f[strlen(f) - 1];
    int ok = 0;
    switch (kind) {
    case F64:
        ok = c == 'd' && v->itemsize == 8;
        break;
    case INDEX:
        ok = (c == 'i' || c == 'l' || c == 'q') && (v->itemsize == 4 || v->itemsize == 8);
        break;
    case INDEX16: /* INDEX, or unsigned 2-byte indices (csr_sums) */
        ok = ((c == 'i' || c == 'l' || c == 'q') && (v->itemsize == 4 || v->itemsize == 8)) ||
             (c == 'H' && v->itemsize == 2);
        break;
    case U64:
        ok = (c == 'L' || c == 'Q') && v->itemsize == 8;
        break;
    case BOOL:
        ok = c == '?' && v->itemsize == 1;
        break;
    case BYTE: /* bools or raw bytes (a bytearray) */
        ok = (c == '?' || c == 'B' || c == 'b' || c == 'c') && v->itemsize == 1;
        break;
    }
    if (!ok) {
        PyErr_Format(PyExc_TypeError, "%s: unexpected item type '%s' (%zd bytes)", name, f,
                     v->itemsize);
        return NULL;
    }
    return v;
}

static inline Py_ssize_t
items(const Py_buffer *v)
{
    return v->len / v->itemsize;
}

/* Item i of an INDEX buffer. */
static inline int64_t
at(const Py_buffer *v, Py_ssize_t i)
{
    return v->itemsize == 4 ? ((const int32_t *)v->buf)[i] : ((const int64_t *)v->buf)[i];
}

/* The (rows, words) shape of a 2-D bitset buffer. */
static int
shape2(const Py_buffer *v, const char *name, Py_ssize_t *rows, Py_ssize_t *words)
{
    if (v->ndim != 2) {
        PyErr_Format(PyExc_ValueError, "%s: expected a 2-D array", name);
        return -1;
    }
    *rows = v->shape[0];
    *words = v->shape[1];
    return 0;
}

/* ---------------------------------------------------------------------------------------------
 * The SGD perceptron sweep: the rows' ranges, indices and values, and the learner's state. */

typedef struct {
    const Py_buffer *starts, *ends, *ind;
    const double *val, *sign;
    double *w, *state, *drift;
    Py_ssize_t n, n_ind, n_w;
    double alpha, t0, decay;
} Sweep;

/* Row i's range [lo, hi), checked against the index and value arrays; -1 when out of range. */
static inline int
row_range(const Sweep *s, Py_ssize_t i, int64_t *lo, int64_t *hi)
{
    *lo = at(s->starts, i);
    *hi = at(s->ends, i);
    return (*lo < 0 || *hi < *lo || *hi > s->n_ind) ? -1 : 0;
}

/* Row i's margin sign * (w·x + b) into *m and Σ|w_k x_k| into *a, summed in index order; -1
 * when its range or one of its features lies outside the arrays (or at or past `limit`). */
static inline int
row_margin(const Sweep *s, Py_ssize_t i, double bias, int64_t limit, int64_t *lo, int64_t *hi,
           double *m, double *a)
{
    if (row_range(s, i, lo, hi) < 0)
        return -1;
    double sum = 0.0, abs_sum = 0.0;
    for (int64_t jj = *lo; jj < *hi; jj++) {
        int64_t k = at(s->ind, jj);
        if (k < 0 || k >= limit)
            return -1;
        double p = s->w[k] * s->val[jj];
        sum += p;
        abs_sum += fabs(p);
    }
    *m = s->sign[i] * (sum + bias);
    *a = abs_sum;
    return 0;
}

/* A row whose margin is within 1e-9 of the largest |score| term of 0 (NaN included) is left to
 * Learner.update. */
static inline int
margin_uncertain(double m, double a, double bias)
{
    return !(fabs(m) > 1e-9 * (a + fabs(bias)) + 1e-300);
}

/* A mistake's drift bound (Learner._add_drift) and the change counter in state. */
static inline void
record_change(const Sweep *s, double eta, double l1)
{
    double d0 = eta * s->decay, d1 = eta * l1;
    if (isfinite(d0) && isfinite(d1)) {
        s->drift[0] += d0;
        s->drift[1] += d1;
        s->drift[2] += 0.0;
    } else {
        s->state[3] += 1.0;
    }
    s->state[2] += 1.0;
}

static int
sweep_args(Buffers *b, Sweep *s, PyObject *starts, PyObject *ends, PyObject *ind, PyObject *val,
           PyObject *sign, PyObject *w, PyObject *state, PyObject *drift, double alpha, double t0,
           double decay)
{
    s->alpha = alpha;
    s->t0 = t0;
    s->decay = decay;
    Py_buffer *vs = view(b, starts, INDEX, 0, "starts");
    Py_buffer *ve = vs ? view(b, ends, INDEX, 0, "ends") : NULL;
    Py_buffer *vi = ve ? view(b, ind, INDEX, 0, "ind") : NULL;
    Py_buffer *vv = vi ? view(b, val, F64, 0, "val") : NULL;
    Py_buffer *vg = vv ? view(b, sign, F64, 0, "sign") : NULL;
    Py_buffer *vw = vg ? view(b, w, F64, 1, "w") : NULL;
    Py_buffer *vst = vw ? view(b, state, F64, 1, "state") : NULL;
    Py_buffer *vd = vst ? view(b, drift, F64, 1, "drift") : NULL;
    if (!vd)
        return -1;
    s->starts = vs;
    s->ends = ve;
    s->ind = vi;
    s->val = vv->buf;
    s->sign = vg->buf;
    s->w = vw->buf;
    s->state = vst->buf;
    s->drift = vd->buf;
    s->n = items(vg);
    s->n_ind = items(vi) < items(vv) ? items(vi) : items(vv);
    s->n_w = items(vw);
    if (items(vs) < s->n || items(ve) < s->n || items(vst) < 4 || items(vd) < 3) {
        PyErr_SetString(PyExc_ValueError, "sweep: starts, ends, state or drift too short");
        return -1;
    }
    return 0;
}

static PyObject *
out_of_range(Py_ssize_t i)
{
    PyErr_Format(PyExc_IndexError, "row %zd: a range or a feature index outside the arrays", i);
    return NULL;
}

static PyObject *
sgd_rows(PyObject *self, PyObject *args)
{
    PyObject *starts, *ends, *ind, *val, *sign, *w, *state, *drift;
    double alpha, t0, decay;
    Py_ssize_t start;
    int pause;
    if (!PyArg_ParseTuple(args, "OOOOOOOOdddnp", &starts, &ends, &ind, &val, &sign, &w, &state,
                          &drift, &alpha, &t0, &decay, &start, &pause))
        return NULL;
    Buffers b = {.held = 0};
    Sweep s;
    if (sweep_args(&b, &s, starts, ends, ind, val, sign, w, state, drift, alpha, t0, decay) < 0) {
        release(&b);
        return NULL;
    }
    double *st = s.state, *wt = s.w;
    double bias = st[0], t = st[1];
    /* A start past the last row returns the last row, DONE (as a loop over range(start, n)). */
    Py_ssize_t i = start < 0 ? 0 : (start > s.n ? s.n : start), bad = -1;
    int code = DONE;
    Py_BEGIN_ALLOW_THREADS
    for (; i < s.n; i++) {
        int64_t lo, hi;
        double m, a;
        if (row_margin(&s, i, bias, s.n_w, &lo, &hi, &m, &a) < 0) {
            bad = i;
            break;
        }
        if (margin_uncertain(m, a, bias)) {
            code = UNCERTAIN;
            break;
        }
        double l1 = 0.0;
        if (m <= 0) { /* a mistake: its |values| must sum exactly in any order (whole numbers) */
            int whole = 1;
            for (int64_t jj = lo; jj < hi; jj++) {
                double v = fabs(s.val[jj]);
                whole = whole && v == floor(v);
                l1 += v;
            }
            if (!whole || !(l1 < 9007199254740992.0)) {
                code = UNCERTAIN;
                break;
            }
        }
        double eta = 1.0 / (s.alpha * (s.t0 + t - 1.0));
        t += 1.0;
        if (m > 0)
            continue;
        double c = eta * s.sign[i];
        for (int64_t jj = lo; jj < hi; jj++)
            wt[at(s.ind, jj)] += c * s.val[jj];
        bias += c * s.decay;
        record_change(&s, eta, l1);
        if (pause) {
            i++;
            code = CHANGED;
            break;
        }
    }
    st[0] = bias;
    st[1] = t;
    Py_END_ALLOW_THREADS
    release(&b);
    if (bad >= 0)
        return out_of_range(bad);
    return Py_BuildValue("(ni)", i, code);
}

static PyObject *
sgd_rows_scored(PyObject *self, PyObject *args)
{
    PyObject *starts, *ends, *ind, *val, *sign, *w, *state, *drift, *bits_o, *S_o, *y_o, *acc_o,
        *ev_o;
    double alpha, t0, decay;
    Py_ssize_t start;
    if (!PyArg_ParseTuple(args, "OOOOOOOOdddnOOOOO", &starts, &ends, &ind, &val, &sign, &w,
                          &state, &drift, &alpha, &t0, &decay, &start, &bits_o, &S_o, &y_o,
                          &acc_o, &ev_o))
        return NULL;
    Buffers b = {.held = 0};
    Sweep s;
    Py_buffer *vb, *vS, *vy, *va, *vev;
    Py_ssize_t n_test, words;
    if (sweep_args(&b, &s, starts, ends, ind, val, sign, w, state, drift, alpha, t0, decay) < 0 ||
        !(vb = view(&b, bits_o, U64, 0, "bits")) || !(vS = view(&b, S_o, F64, 1, "S")) ||
        !(vy = view(&b, y_o, BOOL, 0, "y_pos")) || !(va = view(&b, acc_o, F64, 1, "acc")) ||
        !(vev = view(&b, ev_o, F64, 1, "ev")) || shape2(vb, "bits", &n_test, &words) < 0) {
        release(&b);
        return NULL;
    }
    if (items(vS) < n_test || items(vy) < n_test || items(va) < s.n || items(vev) < 6 ||
        n_test == 0) {
        release(&b);
        PyErr_SetString(PyExc_ValueError, "sgd_rows_scored: S, y_pos, acc or ev too short");
        return NULL;
    }
    uint64_t *mask = PyMem_Calloc(words ? words : 1, sizeof(uint64_t));
    if (!mask) {
        release(&b);
        return PyErr_NoMemory();
    }
    const uint64_t *bits = vb->buf;
    const uint8_t *y_pos = vy->buf;
    double *S = vS->buf, *acc = va->buf, *ev = vev->buf;
    double *st = s.state, *wt = s.w;
    double bias = st[0], t = st[1];
    int64_t right = (int64_t)ev[0];
    double err = ev[1], wmax = ev[2], l1_max = ev[3], nnz_max = ev[4], tol_rel = ev[5];
    double cur = (double)right / (double)n_test;
    int code = DONE;
    Py_ssize_t i = start < 0 ? 0 : start, bad = -1;
    Py_BEGIN_ALLOW_THREADS
    /* Features must also fall within the test rows' bitsets (the mistake's mask). */
    int64_t limit = s.n_w < 64 * words ? s.n_w : 64 * words;
    while (i < s.n) {
        int64_t lo, hi;
        double m, a;
        if (row_margin(&s, i, bias, limit, &lo, &hi, &m, &a) < 0) {
            bad = i;
            break;
        }
        if (margin_uncertain(m, a, bias)) {
            code = UNCERTAIN;
            break;
        }
        double eta = 1.0 / (s.alpha * (s.t0 + t - 1.0));
        t += 1.0;
        if (m > 0) {
            acc[i] = cur;
            i++;
            continue;
        }
        /* A mistake (0/1 values: |values| sum exactly, to the row's length). */
        double l1 = 0.0;
        for (int64_t jj = lo; jj < hi; jj++)
            l1 += fabs(s.val[jj]);
        double c = eta * s.sign[i];
        for (int64_t jj = lo; jj < hi; jj++) {
            int64_t k = at(s.ind, jj);
            double x = wt[k] + c * s.val[jj];
            wt[k] = x;
            if (fabs(x) > wmax)
                wmax = fabs(x);
            mask[k >> 6] |= (uint64_t)1 << (k & 63);
        }
        bias += c * s.decay;
        record_change(&s, eta, l1);
        /* Each touched weight moved by c up to its own rounding (half an ulp of the new weight),
         * the intercept by c*decay up to half an ulp of b; the advance rounds 3 times. */
        double db = c * s.decay;
        double scale = l1_max * wmax + fabs(bias);
        double len = (double)(hi - lo) < nnz_max ? (double)(hi - lo) : nnz_max;
        err += len * EPS * wmax + EPS * fabs(bias) + 6.0 * EPS * scale;
        double tol = tol_rel * 2.0 * scale + err;
        int64_t good, near;
        advance_rows(bits, n_test, words, mask, 1, &c, db, S, y_pos, tol, &good, &near);
        for (int64_t jj = lo; jj < hi; jj++)
            mask[at(s.ind, jj) >> 6] = 0;
        i++;
        if (near) {
            code = NEAR;
            break;
        }
        right = good;
        cur = (double)right / (double)n_test;
        acc[i - 1] = cur;
    }
    st[0] = bias;
    st[1] = t;
    ev[0] = (double)right;
    ev[1] = err;
    ev[2] = wmax;
    Py_END_ALLOW_THREADS
    PyMem_Free(mask);
    release(&b);
    if (bad >= 0)
        return out_of_range(bad);
    return Py_BuildValue("(ni)", i, code);
}

static PyObject *
bit_advance(PyObject *self, PyObject *args)
{
    PyObject *bits_o, *masks_o, *values_o, *S_o, *y_o;
    double db, tol;
    if (!PyArg_ParseTuple(args, "OOOdOOd", &bits_o, &masks_o, &values_o, &db, &S_o, &y_o, &tol))
        return NULL;
    Buffers b = {.held = 0};
    Py_buffer *vb, *vm, *vv, *vS, *vy;
    Py_ssize_t n, words, groups, mwords;
    if (!(vb = view(&b, bits_o, U64, 0, "bits")) || !(vm = view(&b, masks_o, U64, 0, "masks")) ||
        !(vv = view(&b, values_o, F64, 0, "values")) || !(vS = view(&b, S_o, F64, 1, "scores")) ||
        !(vy = view(&b, y_o, BOOL, 0, "y_pos")) || shape2(vb, "bits", &n, &words) < 0 ||
        shape2(vm, "masks", &groups, &mwords) < 0) {
        release(&b);
        return NULL;
    }
    if (mwords != words || items(vv) < groups || items(vS) < n || items(vy) < n) {
        release(&b);
        PyErr_SetString(PyExc_ValueError, "bit_advance: the arrays' shapes do not match");
        return NULL;
    }
    const uint64_t *bits = vb->buf, *masks = vm->buf;
    const double *values = vv->buf;
    const uint8_t *y_pos = vy->buf;
    double *S = vS->buf;
    int64_t correct, near;
    Py_BEGIN_ALLOW_THREADS
    advance_rows(bits, n, words, masks, groups, values, db, S, y_pos, tol, &correct, &near);
    Py_END_ALLOW_THREADS
    release(&b);
    return Py_BuildValue("(LL)", (long long)correct, (long long)near);
}

static PyObject *
book_shift(PyObject *self, PyObject *args)
{
    PyObject *bits_o, *mask_o, *score_o, *mag_o, *live_o, *xl1_o, *out_o;
    Py_ssize_t lo, hi;
    double step, istep, k, w_bound, x_l1_max, b_bound, tol;
    if (!PyArg_ParseTuple(args, "OnnOdddOOOOddddO", &bits_o, &lo, &hi, &mask_o, &step, &istep, &k,
                          &score_o, &mag_o, &live_o, &xl1_o, &w_bound, &x_l1_max, &b_bound, &tol,
                          &out_o))
        return NULL;
    Buffers b = {.held = 0};
    Py_buffer *vb, *vm, *vs, *vg, *vl, *vx, *vo;
    Py_ssize_t rows, words;
    if (!(vb = view(&b, bits_o, U64, 0, "bits")) || !(vm = view(&b, mask_o, U64, 0, "mask")) ||
        !(vs = view(&b, score_o, F64, 1, "score")) || !(vg = view(&b, mag_o, F64, 1, "mag")) ||
        !(vl = view(&b, live_o, BOOL, 0, "live")) || !(vx = view(&b, xl1_o, F64, 0, "x_l1")) ||
        !(vo = view(&b, out_o, INDEX, 1, "out")) || shape2(vb, "bits", &rows, &words) < 0) {
        release(&b);
        return NULL;
    }
    if (lo < 0 || hi < lo || hi > rows || hi > items(vs) || hi > items(vg) || hi > items(vl) ||
        hi > items(vx) || items(vm) != words || items(vo) < hi - lo || vo->itemsize != 8) {
        release(&b);
        PyErr_SetString(PyExc_ValueError, "book_shift: the arrays' shapes do not match");
        return NULL;
    }
    unsigned char *flip = PyMem_Malloc(hi > lo ? (size_t)(hi - lo) : 1);
    if (!flip) {
        release(&b);
        return PyErr_NoMemory();
    }
    const uint64_t *bits = vb->buf, *mask = vm->buf;
    const uint8_t *live = vl->buf;
    const double *x_l1 = vx->buf;
    double *score = vs->buf, *mag = vg->buf;
    int64_t *out = vo->buf;
    Py_ssize_t count = 0;
    Py_BEGIN_ALLOW_THREADS
    double mag_max, a_min;
    shift_rows(bits, lo, hi, words, mask, step, istep, k, score, mag, flip, &mag_max, &a_min);
    /* Pass 2: a live slot within its rounding allowance of zero may have changed class too. */
    double tol_max = tol * (mag_max + w_bound * x_l1_max + b_bound);
    int near = a_min <= tol_max;
    for (Py_ssize_t i = lo; i < hi; i++) {
        int c = flip[i - lo];
        if (near)
            c |= fabs(score[i]) <= tol * (mag[i] + w_bound * x_l1[i] + b_bound);
        if (c && live[i])
            out[count++] = i - lo;
    }
    Py_END_ALLOW_THREADS
    PyMem_Free(flip);
    release(&b);
    return PyLong_FromSsize_t(count);
}

/* The claim walk's scan of book slots [lo, hi): each live slot's code (agrees * 4 + own * 2 +
 * claimed, a bit 0 where its array is not given) looked up in an 8-entry table; the slots whose
 * entry is true are written to out (slot numbers, in order), at most `limit` of them. */
static PyObject *
walk_scan(PyObject *self, PyObject *args)
{
    PyObject *author_o, *agree_o, *marks_o, *live_o, *table_o, *out_o;
    Py_ssize_t lo, hi, a_lo, limit;
    long long me;
    int marks_bits;
    if (!PyArg_ParseTuple(args, "OLnnOnOpOOOn", &author_o, &me, &lo, &hi, &agree_o, &a_lo,
                          &marks_o, &marks_bits, &live_o, &table_o, &out_o, &limit))
        return NULL;
    Buffers b = {.held = 0};
    Py_buffer *va, *vl, *vt, *vo, *vg = NULL, *vm = NULL;
    if (!(va = view(&b, author_o, INDEX, 0, "author")) || !(vl = view(&b, live_o, BOOL, 0, "live")) ||
        !(vt = view(&b, table_o, BOOL, 0, "table")) || !(vo = view(&b, out_o, INDEX, 1, "out")) ||
        (agree_o != Py_None && !(vg = view(&b, agree_o, BOOL, 0, "agree"))) ||
        (marks_o != Py_None && !(vm = view(&b, marks_o, BYTE, 0, "marks")))) {
        release(&b);
        return NULL;
    }
    Py_ssize_t room = hi - lo < limit ? hi - lo : limit;
    if (lo < 0 || hi < lo || hi > items(va) || hi > items(vl) || items(vt) != 8 || limit < 0 ||
        vo->itemsize != 8 || items(vo) < room ||
        (vg && (a_lo < 0 || a_lo > lo || hi - a_lo > items(vg))) ||
        (vm && (marks_bits ? (hi + 7) >> 3 : hi) > items(vm))) {
        release(&b);
        PyErr_SetString(PyExc_ValueError, "walk_scan: the arrays' shapes do not match");
        return NULL;
    }
    const uint8_t *live = vl->buf, *table = vt->buf;
    const uint8_t *agree = vg ? vg->buf : NULL;
    const uint8_t *marks = vm ? vm->buf : NULL;
    int64_t *out = vo->buf;
    Py_ssize_t count = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = lo; i < hi && count < limit; i++) {
        if (!live[i])
            continue;
        int code = (at(va, i) == me) << 1;
        if (agree)
            code |= (agree[i - a_lo] != 0) << 2;
        if (marks)
            code |= marks_bits ? (marks[i >> 3] >> (i & 7)) & 1 : marks[i] != 0;
        if (table[code])
            out[count++] = i;
    }
    Py_END_ALLOW_THREADS
    release(&b);
    return PyLong_FromSsize_t(count);
}

/* Smallest of a and b, NaN if either is (numpy's minimum). */
static inline double
nan_min(double a, double b)
{
    return (a != a || b != b) ? NAN : (b < a ? b : a);
}

/* Largest of a and b, NaN if either is (numpy's maximum). */
static inline double
nan_max(double a, double b)
{
    return (a != a || b != b) ? NAN : (b > a ? b : a);
}

/* A tracked slot's budget: how far its drift bound may grow past `total` while its class stays
 * proven (MarketModel._track_budgets). */
static inline double
track_budget(double cap, double total)
{
    return cap - total * (1.0 + 2e-9) - 2e-12;
}

/* The tracking pass's choice (see track_select): the slots of [lo, hi) to re-predict, written to
 * out (in order) with their drift bound since the learner's start; the smallest budget of the
 * others. */
static PyObject *
track_select(PyObject *self, PyObject *args)
{
    PyObject *inf_o, *l1_o, *cap_o, *live_o, *ep_o, *out_o, *tot_o;
    Py_ssize_t lo, hi;
    long long e;
    double d0, d1, d2, thresh;
    if (!PyArg_ParseTuple(args, "nnOOOOOLddddOO", &lo, &hi, &inf_o, &l1_o, &cap_o, &live_o, &ep_o,
                          &e, &d0, &d1, &d2, &thresh, &out_o, &tot_o))
        return NULL;
    Buffers b = {.held = 0};
    Py_buffer *vi, *vl, *vc, *vv, *ve, *vo, *vt;
    if (!(vi = view(&b, inf_o, F64, 0, "x_inf")) || !(vl = view(&b, l1_o, F64, 0, "x_l1")) ||
        !(vc = view(&b, cap_o, F64, 0, "cap")) || !(vv = view(&b, live_o, BOOL, 0, "live")) ||
        !(ve = view(&b, ep_o, INDEX, 0, "epoch_at")) || !(vo = view(&b, out_o, INDEX, 1, "out")) ||
        !(vt = view(&b, tot_o, F64, 1, "total"))) {
        release(&b);
        return NULL;
    }
    if (lo < 0 || hi < lo || hi > items(vi) || hi > items(vl) || hi > items(vc) ||
        hi > items(vv) || hi > items(ve) || vo->itemsize != 8 || items(vo) < hi - lo ||
        items(vt) < hi - lo) {
        release(&b);
        PyErr_SetString(PyExc_ValueError, "track_select: the arrays' shapes do not match");
        return NULL;
    }
    const double *x_inf = vi->buf, *x_l1 = vl->buf, *cap = vc->buf;
    const uint8_t *live = vv->buf;
    int64_t *out = vo->buf;
    double *tot = vt->buf, rest = INFINITY;
    Py_ssize_t n = 0;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = lo; i < hi; i++) {
        double total = x_inf[i] * d1; /* MarketModel._drift_total's operations, in its order */
        total = total + x_l1[i] * d2;
        total = total + d0;
        double budget = track_budget(cap[i], total);
        if (budget < thresh || (live[i] && at(ve, i) != e)) {
            out[n] = i;
            tot[n++] = total;
        } else {
            rest = nan_min(rest, budget);
        }
    }
    Py_END_ALLOW_THREADS
    release(&b);
    return Py_BuildValue("nd", n, rest);
}

/* The tracking pass's re-predictions (see track_apply). */
#define TRACK_APPLY(NAME, T)                                                                    \
    static Py_ssize_t NAME(const int64_t *idx, Py_ssize_t n, const double *tot,                 \
                           const Py_buffer *vp, Py_ssize_t n_ptr, const T *ind, Py_ssize_t n_ind, \
                           const double *w, Py_ssize_t d, double off, int64_t *pred,            \
                           double *cap, int64_t *epoch_at, int64_t e, const double *x_inf,      \
                           const double *x_l1, Py_ssize_t n_slots, int64_t *flipped,            \
                           Py_ssize_t *n_flip, double *acc)                                     \
    {                                                                                           \
        Py_ssize_t nf = 0;                                                                      \
        double lo_budget = acc[0], mx_inf = -INFINITY, mx_l1 = -INFINITY;                       \
        for (Py_ssize_t k = 0; k < n; k++) {                                                    \
            int64_t i = idx[k];                                                                 \
            if (i < 0 || i >= n_slots || i + 1 >= n_ptr)                                        \
                return k;                                                                       \
            int64_t a = at(vp, i), z = at(vp, i + 1);                                           \
            if (a < 0 || z > n_ind)                                                             \
                return k;                                                                       \
            double s = 0.0;                                                                     \
            for (int64_t q = a; q < z; q++) {                                                   \
                T j = ind[q];                                                                   \
                if ((uint64_t)j >= (uint64_t)d)                                                 \
                    return k;                                                                   \
                s += w[j];                                                                      \
            }                                                                                   \
            s = s + off;                                                                        \
            int64_t label = s > 0.0;                                                            \
            double c = fabs(s) + tot[k];                                                        \
            if (epoch_at[i] == e && label != pred[i])                                           \
                flipped[nf++] = i;                                                              \
            pred[i] = label;                                                                    \
            cap[i] = c;                                                                         \
            epoch_at[i] = e;                                                                    \
            lo_budget = nan_min(lo_budget, track_budget(c, tot[k]));                            \
            mx_inf = nan_max(mx_inf, x_inf[i]);                                                 \
            mx_l1 = nan_max(mx_l1, x_l1[i]);                                                    \
        }                                                                                       \
        *n_flip = nf;                                                                           \
        acc[0] = lo_budget;                                                                     \
        /* Python's max(before, the slots' numpy maximum): the earlier value unless exceeded */ \
        acc[1] = mx_inf > acc[1] ? mx_inf : acc[1];                                             \
        acc[2] = mx_l1 > acc[2] ? mx_l1 : acc[2];                                               \
        return -1;                                                                              \
    }
TRACK_APPLY(track_apply_i32, int32_t)
TRACK_APPLY(track_apply_i64, int64_t)

static PyObject *
track_apply(PyObject *self, PyObject *args)
{
    PyObject *idx_o, *tot_o, *ptr_o, *ind_o, *w_o, *pred_o, *cap_o, *ep_o, *inf_o, *l1_o, *fl_o;
    Py_ssize_t n;
    double off, acc[3];
    long long e;
    if (!PyArg_ParseTuple(args, "OnOOOOdOOOLOOOddd", &idx_o, &n, &tot_o, &ptr_o, &ind_o, &w_o,
                          &off, &pred_o, &cap_o, &ep_o, &e, &inf_o, &l1_o, &fl_o, &acc[0],
                          &acc[1], &acc[2]))
        return NULL;
    Buffers b = {.held = 0};
    Py_buffer *vx, *vt, *vp, *vi, *vw, *vd, *vc, *ve, *vf, *vl, *vo;
    if (!(vx = view(&b, idx_o, INDEX, 0, "slots")) || !(vt = view(&b, tot_o, F64, 0, "total")) ||
        !(vp = view(&b, ptr_o, INDEX, 0, "fptr")) || !(vi = view(&b, ind_o, INDEX, 0, "fidx")) ||
        !(vw = view(&b, w_o, F64, 0, "w")) || !(vd = view(&b, pred_o, INDEX, 1, "pred")) ||
        !(vc = view(&b, cap_o, F64, 1, "cap")) || !(ve = view(&b, ep_o, INDEX, 1, "epoch_at")) ||
        !(vf = view(&b, inf_o, F64, 0, "x_inf")) || !(vl = view(&b, l1_o, F64, 0, "x_l1")) ||
        !(vo = view(&b, fl_o, INDEX, 1, "flipped"))) {
        release(&b);
        return NULL;
    }
    Py_ssize_t slots = items(vc);
    if (n < 0 || items(vx) < n || items(vt) < n || items(vo) < n || vx->itemsize != 8 ||
        vd->itemsize != 8 || ve->itemsize != 8 || vo->itemsize != 8 || items(vd) < slots ||
        items(ve) < slots || items(vf) < slots || items(vl) < slots) {
        release(&b);
        PyErr_SetString(PyExc_ValueError, "track_apply: the arrays' shapes do not match");
        return NULL;
    }
    Py_ssize_t bad, nf = 0;
    Py_BEGIN_ALLOW_THREADS
    if (vi->itemsize == 4)
        bad = track_apply_i32(vx->buf, n, vt->buf, vp, items(vp), vi->buf, items(vi), vw->buf,
                              items(vw), off, vd->buf, vc->buf, ve->buf, e, vf->buf, vl->buf,
                              slots, vo->buf, &nf, acc);
    else
        bad = track_apply_i64(vx->buf, n, vt->buf, vp, items(vp), vi->buf, items(vi), vw->buf,
                              items(vw), off, vd->buf, vc->buf, ve->buf, e, vf->buf, vl->buf,
                              slots, vo->buf, &nf, acc);
    Py_END_ALLOW_THREADS
    release(&b);
    if (bad >= 0) {
        PyErr_Format(PyExc_IndexError, "track_apply: slot %zd reaches outside the arrays", bad);
        return NULL;
    }
    return Py_BuildValue("nddd", nf, acc[0], acc[1], acc[2]);
}

/* The rest of a Naive Bayes update once class y's counts are written (MultinomialNB._update after
 * its count update, and Learner._add_drift): the class's total and sample count, and the drift
 * bound added when finite. The same operations in the same order as the Python code (Python's sum
 * of the class counts from 0, max() keeping the first of equals, math.log1p being the C
 * library's). Returns 1 when the drift was added, 0 when it was not finite. */
static int
nb_tail(double *total, double *cc, Py_ssize_t k, double *drift, Py_ssize_t y, double v_sum,
        double d_feat, double alpha, Py_ssize_t d)
{
    double old_total = total[y];
    total[y] = old_total + v_sum;
    double c_all = 0.0;
    for (Py_ssize_t i = 0; i < k; i++)
        c_all += cc[i];
    double c_y = cc[y];
    cc[y] = c_y + 1.0;
    double shift = c_all > 0 ? log1p(1.0 / c_all) : INFINITY; /* every prior: -log((C+1)/C) */
    double other = c_y > 0 ? fabs(log1p(1.0 / c_y) - shift) : INFINITY;
    double d_prior = 2.0 * (other > shift ? other : shift);
    double d_norm = log1p(v_sum / (old_total + alpha * (double)d));
    if (!(isfinite(d_prior) && isfinite(d_feat) && isfinite(d_norm)))
        return 0;
    drift[0] += d_prior;
    drift[1] += d_feat;
    drift[2] += d_norm;
    return 1;
}

/* Naive Bayes' count update for one sample, and with the learner's state the rest of the update
 * (see nb_add). */
static PyObject *
nb_add(PyObject *self, PyObject *args)
{
    PyObject *row_o, *ind_o, *val_o, *tab_o = Py_None;
    PyObject *tot_o = Py_None, *cc_o = Py_None, *drift_o = Py_None;
    Py_ssize_t y = -1;
    double alpha;
    if (!PyArg_ParseTuple(args, "OOOd|OnOOO", &row_o, &ind_o, &val_o, &alpha, &tab_o, &y, &tot_o,
                          &cc_o, &drift_o))
        return NULL;
    Buffers b = {.held = 0};
    Py_buffer *vr, *vi, *vv, *vt = NULL, *vtot = NULL, *vcc = NULL, *vdr = NULL;
    int state = tot_o != Py_None;
    if (!(vr = view(&b, row_o, F64, 1, "counts")) || !(vi = view(&b, ind_o, INDEX, 0, "indices")) ||
        !(vv = view(&b, val_o, F64, 0, "values")) ||
        (tab_o != Py_None && !(vt = view(&b, tab_o, F64, 0, "table"))) ||
        (state && (!(vtot = view(&b, tot_o, F64, 1, "total")) ||
                   !(vcc = view(&b, cc_o, F64, 1, "class_count")) ||
                   !(vdr = view(&b, drift_o, F64, 1, "drift"))))) {
        release(&b);
        return NULL;
    }
    if (state && (items(vtot) != items(vcc) || y < 0 || y >= items(vcc) || items(vdr) != 3)) {
        release(&b);
        PyErr_SetString(PyExc_IndexError, "nb_add: class outside the totals, or a drift not of 3");
        return NULL;
    }
    /* drift terms of a value 1 added to a whole count k < tn: tab[k] (see nb_drift_table) */
    const double *tab = vt ? vt->buf : NULL;
    double tn = vt ? (double)items(vt) : 0.0;
    Py_ssize_t n = items(vi), d = items(vr);
    if (items(vv) != n) {
        release(&b);
        PyErr_SetString(PyExc_ValueError, "nb_add: indices and values differ in length");
        return NULL;
    }
    const double *v = vv->buf;
    double *row = vr->buf;
    double *fresh = PyMem_Malloc(n > 0 ? (size_t)n * sizeof(double) : 1);
    if (!fresh) {
        release(&b);
        return PyErr_NoMemory();
    }
    Py_ssize_t bad = -1;
    int64_t bad_k = 0;
    int negative = 0, whole = 1;
    double d_feat = 0.0, v_sum = 0.0;
    Py_BEGIN_ALLOW_THREADS
    /* Every check and read before any write: a refused sample changes nothing, and repeated
     * indices end as numpy's row[idx] = row[idx] + v leaves them (the last one written). */
    for (Py_ssize_t j = 0; j < n; j++) {
        int64_t k = at(vi, j);
        if (k < 0 || k >= d) {
            bad = j;
            bad_k = k;
            break;
        }
        if (v[j] < 0) {
            negative = 1;
            break;
        }
        double old = row[k];
        fresh[j] = old + v[j];
        Py_ssize_t c = old >= 0.0 && old < tn ? (Py_ssize_t)old : -1; /* (no cast out of range) */
        if (v[j] == 1.0 && c >= 0 && (double)c == old)
            d_feat += tab[c]; /* log1p(1.0 / (old + alpha)), as below */
        else
            d_feat += log1p(v[j] / (old + alpha));
        v_sum += v[j];
        /* whole: as v == floor(v) (NaN not, 2**53 and beyond always), by the truncating
         * conversion where it is exact: no libm call per value */
        whole &= v[j] < 9007199254740992.0 ? (double)(int64_t)v[j] == v[j]
                                           : v[j] >= 9007199254740992.0;
    }
    if (bad < 0 && !negative)
        for (Py_ssize_t j = 0; j < n; j++)
            row[at(vi, j)] = fresh[j];
    Py_END_ALLOW_THREADS
    PyMem_Free(fresh);
    if (bad >= 0 || negative) {
        release(&b);
        if (negative)
            PyErr_SetString(PyExc_ValueError, "MultinomialNB needs non-negative features");
        else
            PyErr_Format(PyExc_IndexError,
                         "nb_add: feature index %lld (item %zd) outside the counts",
                         (long long)bad_k, bad);
        return NULL;
    }
    /* Whole values summing to at most 2**53: every partial sum is exact, in any order, so this
     * is numpy's pairwise sum bit for bit; otherwise the caller sums them with numpy. */
    int exact = whole && v_sum <= 9007199254740992.0;
    if (!state) {
        release(&b);
        return exact ? Py_BuildValue("dd", d_feat, v_sum) : Py_BuildValue("dO", d_feat, Py_None);
    }
    /* the rest of the update, where its Python code would give the same bits: an exact v_sum
     * and fewer than 8 classes (numpy sums 8 or more pairwise) */
    int tail = -1;
    if (exact && items(vcc) < 8)
        tail = nb_tail(vtot->buf, vcc->buf, items(vcc), vdr->buf, y, v_sum, d_feat, alpha, d);
    release(&b);
    if (exact)
        return Py_BuildValue("ddi", d_feat, v_sum, tail);
    return Py_BuildValue("dOi", d_feat, Py_None, tail);
}

/* nb_add's drift terms for a value 1 added to count k: out[k] = log1p(1.0 / (k + alpha)), the
 * expression nb_add computes otherwise (see nb_drift_table). */
static PyObject *
nb_drift_table(PyObject *self, PyObject *args)
{
    PyObject *out_o;
    double alpha;
    if (!PyArg_ParseTuple(args, "Od", &out_o, &alpha))
        return NULL;
    Buffers b = {.held = 0};
    Py_buffer *vo = view(&b, out_o, F64, 1, "out");
    if (!vo)
        return NULL;
    double *out = vo->buf;
    Py_ssize_t n = items(vo);
    for (Py_ssize_t k = 0; k < n; k++)
        out[k] = log1p(1.0 / ((double)k + alpha));
    release(&b);
    Py_RETURN_NONE;
}

/* The table size whole-number counts row[ids[j]] (every row[j] when ids is NULL; n of them) need:
 * their largest + 1, 0 when every one is below tn (a table of tn items holds them), -1 when one
 * is not a whole number from 0 to 2**53, or -2 with *bad set to an index outside the row (0..d). */
static long long
whole_counts_need(const double *row, Py_ssize_t d, const Py_buffer *ids, Py_ssize_t n,
                  Py_ssize_t tn, Py_ssize_t *bad)
{
    double top = -1.0;
    for (Py_ssize_t j = 0; j < n; j++) {
        int64_t k = ids ? at(ids, j) : j;
        if (k < 0 || k >= d) {
            *bad = j;
            return -2;
        }
        double c = row[k];
        /* (a whole number: the truncating conversion, exact below 2**53, gives it back) */
        if (!(c >= 0.0 && c < 9007199254740992.0 && (double)(int64_t)c == c))
            return -1;
        if (c > top)
            top = c;
    }
    return top >= (double)tn ? (long long)top + 1 : 0;
}

/* out[j] = table[counts[j]] for every j (or every j in ids): the logs of whole-number counts read
 * from a table of log(k + alpha) (see nb_logs in _compiled.py). Returns 0 when done; else nothing
 * is written, and it returns the table size the counts need (> 0), or -1 (a count that is not a
 * whole number from 0 to 2**53). */
static PyObject *
nb_logs(PyObject *self, PyObject *args)
{
    PyObject *row_o, *tab_o, *out_o, *ids_o = Py_None;
    if (!PyArg_ParseTuple(args, "OOO|O", &row_o, &tab_o, &out_o, &ids_o))
        return NULL;
    Buffers b = {.held = 0};
    Py_buffer *vr, *vt, *vo, *vi = NULL;
    if (!(vr = view(&b, row_o, F64, 0, "counts")) || !(vt = view(&b, tab_o, F64, 0, "table")) ||
        !(vo = view(&b, out_o, F64, 1, "out")) ||
        (ids_o != Py_None && !(vi = view(&b, ids_o, INDEX, 0, "ids")))) {
        release(&b);
        return NULL;
    }
    const double *row = vr->buf, *tab = vt->buf;
    double *out = vo->buf;
    Py_ssize_t d = items(vr), n = vi ? items(vi) : d, bad = -1;
    if (items(vo) != d) {
        release(&b);
        PyErr_SetString(PyExc_ValueError, "nb_logs: counts and out differ in length");
        return NULL;
    }
    long long need = whole_counts_need(row, d, vi, n, items(vt), &bad);
    if (need == 0)
        for (Py_ssize_t j = 0; j < n; j++) {
            int64_t k = vi ? at(vi, j) : j;
            out[k] = tab[(Py_ssize_t)row[k]];
        }
    if (need == -2) {
        PyErr_Format(PyExc_IndexError, "nb_logs: feature index %lld (item %zd) outside the counts",
                     (long long)at(vi, bad), bad);
        release(&b);
        return NULL;
    }
    release(&b);
    return PyLong_FromLongLong(need);
}

/* A two-class model's weights from whole-number counts: w[j] = (table[c1[j]] - n1) - (table[c0[j]]
 * - n0), the operations of MultinomialNB.score_params on logs read from the table (see
 * nb_binary_weights in _compiled.py). Returns as nb_logs does. */
static PyObject *
nb_binary_weights(PyObject *self, PyObject *args)
{
    PyObject *c0_o, *c1_o, *tab_o, *out_o;
    double n0, n1;
    if (!PyArg_ParseTuple(args, "OOOddO", &c0_o, &c1_o, &tab_o, &n0, &n1, &out_o))
        return NULL;
    Buffers b = {.held = 0};
    Py_buffer *v0, *v1, *vt, *vo;
    if (!(v0 = view(&b, c0_o, F64, 0, "counts0")) || !(v1 = view(&b, c1_o, F64, 0, "counts1")) ||
        !(vt = view(&b, tab_o, F64, 0, "table")) || !(vo = view(&b, out_o, F64, 1, "out"))) {
        release(&b);
        return NULL;
    }
    Py_ssize_t d = items(vo), tn = items(vt), bad = -1;
    if (items(v0) != d || items(v1) != d) {
        release(&b);
        PyErr_SetString(PyExc_ValueError, "nb_binary_weights: counts and out differ in length");
        return NULL;
    }
    const double *c0 = v0->buf, *c1 = v1->buf, *tab = vt->buf;
    double *w = vo->buf;
    long long need = whole_counts_need(c0, d, NULL, d, tn, &bad);
    long long need1 = need < 0 ? need : whole_counts_need(c1, d, NULL, d, tn, &bad);
    if (need1 < 0 || need1 > need)
        need = need1;
    if (need == 0)
        for (Py_ssize_t j = 0; j < d; j++)
            w[j] = (tab[(Py_ssize_t)c1[j]] - n1) - (tab[(Py_ssize_t)c0[j]] - n0);
    release(&b);
    return PyLong_FromLongLong(need);
}

/* Scores of CSR rows whose values are all 1 (see csr_sums): out[i] = Σ w[ind[k]] over
 * k in [ptr[i], ptr[i+1]) (empty when the end is not past the start), summed from 0.0 in order:
 * scipy's csr_matvec with every value 1.0 (x * 1.0 is x), without reading the values. Two rows at
 * a time, each with its own sum (independent additions overlap in the pipeline). Returns a row
 * whose range or an index of it lies outside the arrays (the first such pair's), or -1. */
#define CSR_SUMS(NAME, T)                                                                       \
    static Py_ssize_t NAME(const Py_buffer *vp, const T *ind, Py_ssize_t n_ind, const double *w, \
                           Py_ssize_t d, double *out, Py_ssize_t n)                             \
    {                                                                                           \
        Py_ssize_t i = 0;                                                                       \
        for (; i < n; i += 2) {                                                                 \
            int64_t a0 = at(vp, i), a1 = at(vp, i + 1);                                         \
            int64_t b0 = i + 1 < n ? a1 : 0, b1 = i + 1 < n ? at(vp, i + 2) : 0;                \
            if (a1 < a0)                                                                        \
                a1 = a0;                                                                        \
            if (b1 < b0)                                                                        \
                b1 = b0;                                                                        \
            if (a0 < 0 || a1 > n_ind)                                                           \
                return i;                                                                       \
            if (b0 < 0 || b1 > n_ind)                                                           \
                return i + 1;                                                                   \
            int64_t l0 = a1 - a0, l1 = b1 - b0, m = l0 < l1 ? l0 : l1, k;                       \
            double s0 = 0.0, s1 = 0.0;                                                          \
            for (k = 0; k < m; k++) {                                                           \
                T j0 = ind[a0 + k], j1 = ind[b0 + k];                                           \
                if ((uint64_t)j0 >= (uint64_t)d)                                                \
                    return i;                                                                   \
                if ((uint64_t)j1 >= (uint64_t)d)                                                \
                    return i + 1;                                                               \
                s0 += w[j0];                                                                    \
                s1 += w[j1];                                                                    \
            }                                                                                   \
            for (int64_t q = k; q < l0; q++) {                                                  \
                T j = ind[a0 + q];                                                              \
                if ((uint64_t)j >= (uint64_t)d)                                                 \
                    return i;                                                                   \
                s0 += w[j];                                                                     \
            }                                                                                   \
            for (int64_t q = k; q < l1; q++) {                                                  \
                T j = ind[b0 + q];                                                              \
                if ((uint64_t)j >= (uint64_t)d)                                                 \
                    return i + 1;                                                               \
                s1 += w[j];                                                                     \
            }                                                                                   \
            out[i] = s0;                                                                        \
            if (i + 1 < n)                                                                      \
                out[i + 1] = s1;                                                                \
        }                                                                                       \
        return -1;                                                                              \
    }
CSR_SUMS(csr_sums_u16, uint16_t)
CSR_SUMS(csr_sums_i32, int32_t)
CSR_SUMS(csr_sums_i64, int64_t)

/* csr_sums' loop for 2-byte indices into a `w` of 65,536 items or more, where no index can reach
 * outside `w` and none is tested (kernel_scores pads `w` so): four rows at a time, each with its
 * own sum in its own order. Bound by the indices it streams: on S1's test set 1.9 ms against 2.8
 * for the checked loop on 4-byte indices (benchmarks/learners.py). Returns a row whose range lies
 * outside the indices, or -1. */
static Py_ssize_t
csr_sums_u16_free(const Py_buffer *vp, const uint16_t *ind, Py_ssize_t n_ind, const double *w,
                  double *out, Py_ssize_t n)
{
    for (Py_ssize_t i = 0; i < n; i += 4) {
        Py_ssize_t rows = n - i < 4 ? n - i : 4, r;
        const uint16_t *p[4] = {ind, ind, ind, ind};
        int64_t l[4] = {0, 0, 0, 0}, m = INT64_MAX, k;
        for (r = 0; r < rows; r++) {
            int64_t b0 = at(vp, i + r), b1 = at(vp, i + r + 1);
            if (b1 < b0)
                b1 = b0;
            if (b0 < 0 || b1 > n_ind)
                return i + r;
            p[r] = ind + b0;
            l[r] = b1 - b0;
        }
        for (r = 0; r < 4; r++)
            m = l[r] < m ? l[r] : m;
        double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
        for (k = 0; k < m; k++) {
            s0 += w[p[0][k]];
            s1 += w[p[1][k]];
            s2 += w[p[2][k]];
            s3 += w[p[3][k]];
        }
        double sum[4] = {s0, s1, s2, s3};
        for (r = 0; r < rows; r++) { /* each row's rest, past the shortest row's length */
            for (int64_t q = k; q < l[r]; q++)
                sum[r] += w[p[r][q]];
            out[i + r] = sum[r];
        }
    }
    return -1;
}

static PyObject *
csr_sums(PyObject *self, PyObject *args)
{
    PyObject *ptr_o, *ind_o, *w_o, *out_o;
    if (!PyArg_ParseTuple(args, "OOOO", &ptr_o, &ind_o, &w_o, &out_o))
        return NULL;
    Buffers b = {.held = 0};
    Py_buffer *vp, *vi, *vw, *vo;
    if (!(vp = view(&b, ptr_o, INDEX, 0, "indptr")) ||
        !(vi = view(&b, ind_o, INDEX16, 0, "indices")) ||
        !(vw = view(&b, w_o, F64, 0, "w")) || !(vo = view(&b, out_o, F64, 1, "out"))) {
        release(&b);
        return NULL;
    }
    Py_ssize_t n = items(vp) - 1;
    if (n < 0 || items(vo) != n) {
        release(&b);
        PyErr_SetString(PyExc_ValueError, "csr_sums: out needs one item per row");
        return NULL;
    }
    Py_ssize_t bad;
    Py_BEGIN_ALLOW_THREADS
    if (vi->itemsize == 2 && items(vw) >= 65536)
        bad = csr_sums_u16_free(vp, vi->buf, items(vi), vw->buf, vo->buf, n);
    else if (vi->itemsize == 2)
        bad = csr_sums_u16(vp, vi->buf, items(vi), vw->buf, items(vw), vo->buf, n);
    else if (vi->itemsize == 4)
        bad = csr_sums_i32(vp, vi->buf, items(vi), vw->buf, items(vw), vo->buf, n);
    else
        bad = csr_sums_i64(vp, vi->buf, items(vi), vw->buf, items(vw), vo->buf, n);
    Py_END_ALLOW_THREADS
    release(&b);
    if (bad >= 0) {
        PyErr_Format(PyExc_IndexError, "csr_sums: row %zd reaches outside the arrays", bad);
        return NULL;
    }
    Py_RETURN_NONE;
}

/* The event queue's order: a heap item is a tuple (time, priority, sequence, callback) whose first
 * three items are ints fitting 64 bits (what EventQueue schedules). item_key reads them; item_lt
 * sets *lt = item a < item b as Python compares them (sequences are unique: the callbacks are
 * never compared). Both return -1 for an item of another form. */
static int
item_key(PyObject *item, long long key[3])
{
    if (!PyTuple_CheckExact(item) || PyTuple_GET_SIZE(item) != 4)
        return -1;
    for (int i = 0; i < 3; i++) {
        PyObject *o = PyTuple_GET_ITEM(item, i);
        int overflow = 0;
        if (!PyLong_CheckExact(o))
            return -1;
        key[i] = PyLong_AsLongLongAndOverflow(o, &overflow);
        if (overflow || (key[i] == -1 && PyErr_Occurred())) {
            PyErr_Clear();
            return -1;
        }
    }
    return 0;
}

static int
item_lt(PyObject *a, PyObject *b, int *lt)
{
    if (!PyTuple_CheckExact(a) || PyTuple_GET_SIZE(a) != 4 || !PyTuple_CheckExact(b) ||
        PyTuple_GET_SIZE(b) != 4)
        return -1;
    for (int i = 0; i < 3; i++) { /* the first items that differ decide (mostly the times) */
        PyObject *x = PyTuple_GET_ITEM(a, i), *y = PyTuple_GET_ITEM(b, i);
        int ox = 0, oy = 0;
        if (!PyLong_CheckExact(x) || !PyLong_CheckExact(y))
            return -1;
        long long u = PyLong_AsLongLongAndOverflow(x, &ox), v = PyLong_AsLongLongAndOverflow(y, &oy);
        if (ox || oy || ((u == -1 || v == -1) && PyErr_Occurred())) {
            PyErr_Clear();
            return -1;
        }
        if (u != v) {
            *lt = u < v;
            return 0;
        }
    }
    return -1; /* equal keys: Python would compare the callbacks */
}

/* heapq.heapreplace(heap, item) with the same resulting list: heapq's _siftup (the smaller child
 * moved up until a leaf) then _siftdown of the item from there. Every comparison is made before
 * any write, so -1 (an item it cannot compare) leaves the list as it was; 0 when done (the list
 * holds `item`'s reference, the old head's is released). */
static int
heap_replace(PyObject *heap, PyObject *item)
{
    Py_ssize_t n = PyList_GET_SIZE(heap), path[64], depth = 0, child = 1;
    int lt;
    path[0] = 0;
    while (child < n) {
        Py_ssize_t right = child + 1;
        if (right < n) {
            if (item_lt(PyList_GET_ITEM(heap, child), PyList_GET_ITEM(heap, right), &lt) < 0)
                return -1;
            if (!lt)
                child = right;
        }
        path[++depth] = child;
        child = 2 * child + 1;
    }
    Py_ssize_t m = depth; /* the item's place: above every path item it is smaller than */
    while (m > 0) {
        if (item_lt(item, PyList_GET_ITEM(heap, path[m]), &lt) < 0)
            return -1;
        if (!lt)
            break;
        m--;
    }
    PyObject *old = PyList_GET_ITEM(heap, 0);
    for (Py_ssize_t k = 0; k < m; k++)
        PyList_SET_ITEM(heap, path[k], PyList_GET_ITEM(heap, path[k + 1]));
    PyList_SET_ITEM(heap, path[m], item);
    Py_DECREF(old);
    return 0;
}

static PyObject *str_active, *str_mean_wait, *str_stdev_wait, *zero;

/* A number the wait rule reads (mean_wait_s, stdev_wait_s) as Python's arithmetic converts it to
 * a float: a float, or an int (correctly rounded); -1 for anything else. */
static int
wait_number(PyObject *cfg, PyObject *name, double *out)
{
    PyObject *o = PyObject_GetAttr(cfg, name);
    if (o == NULL)
        return -2;
    int ok = PyFloat_CheckExact(o) || PyLong_CheckExact(o);
    if (ok) {
        *out = PyFloat_AsDouble(o);
        if (*out == -1.0 && PyErr_Occurred()) {
            PyErr_Clear();
            ok = 0;
        }
    }
    Py_DECREF(o);
    return ok ? 0 : -1;
}

/* One wake-up of dry_wakes: the head event `top` (held by the caller) checked, its wait drawn
 * from z[*pos...] and the head replaced. 1 when done (*pos, *seq and *time moved on), 0 when left
 * to the caller (*more = 1 when the normals ran out), -1 on an error. */
static int
dry_wake(PyObject *heap, PyObject *top, PyObject *infos, PyObject *bal, const double *z,
         Py_ssize_t nz, Py_ssize_t *pos, long long limit, long long h0, long long h1,
         long long *seq, long long *time, int *more)
{
    long long key[3], v = 0;
    if (item_key(top, key) < 0 || key[0] > limit)
        return 0;
    PyObject *fn = PyTuple_GET_ITEM(top, 3);
    PyObject *info = PyDict_GetItemWithError(infos, fn);
    if (info == NULL)
        return PyErr_Occurred() ? -1 : 0;
    if (!PyTuple_CheckExact(info) || PyTuple_GET_SIZE(info) != 5) {
        PyErr_SetString(PyExc_TypeError,
                        "dry_wakes: infos holds (agent, address, reference, rank, config)");
        return -1;
    }
    Py_INCREF(info); /* (the reads below could, in principle, run code that changes infos) */
    int r = 0;
    PyObject *agent = PyTuple_GET_ITEM(info, 0), *rank = PyTuple_GET_ITEM(info, 3);
    PyObject *cfg = PyTuple_GET_ITEM(info, 4), *act = NULL, *bv = NULL;
    int ref = PyObject_IsTrue(PyTuple_GET_ITEM(info, 2)), on, paid;
    if (ref < 0)
        goto error;
    if (key[0] >= (ref ? h1 : h0))
        goto out;
    if ((act = PyObject_GetAttr(agent, str_active)) == NULL || (on = PyObject_IsTrue(act)) < 0)
        goto error;
    if (!on)
        goto out;
    bv = PyObject_GetItem(bal, PyTuple_GET_ITEM(info, 1)); /* a missing account holds 0 */
    if (bv == NULL) {
        if (!PyErr_ExceptionMatches(PyExc_KeyError))
            goto error;
        PyErr_Clear();
    }
    paid = bv == NULL ? 0 : PyObject_RichCompareBool(bv, zero, Py_GT);
    if (paid < 0)
        goto error;
    if (!paid)
        goto out;
    double mean, stdev;
    int rm = wait_number(cfg, str_mean_wait, &mean);
    int rs = rm ? rm : wait_number(cfg, str_stdev_wait, &stdev);
    if (rm == -2 || rs == -2)
        goto error;
    if (rm || rs)
        goto out;
    /* draw_positive_int: int(mean + stdev * z) redrawn until > 0 */
    Py_ssize_t p = *pos;
    int drawn = 0, odd = 0;
    while (p < nz) {
        double x = mean + stdev * z[p++];
        if (!(x > -9.0e18 && x < 9.0e18)) {
            odd = 1; /* int() of it leaves 64 bits (or raises): Python draws it */
            break;
        }
        v = (long long)x;
        if (v > 0) {
            drawn = 1;
            break;
        }
    }
    if (!drawn) {
        *more = !odd; /* the normals ran out: the caller draws more and calls again */
        goto out;
    }
    if (v > LLONG_MAX - key[0] || *seq == LLONG_MAX)
        goto out;
    PyObject *t_new = PyLong_FromLongLong(key[0] + v), *s_new = PyLong_FromLongLong(*seq + 1);
    PyObject *item = t_new && s_new ? PyTuple_Pack(4, t_new, rank, s_new, fn) : NULL;
    Py_XDECREF(t_new);
    Py_XDECREF(s_new);
    if (item == NULL)
        goto error;
    if (PyList_GET_SIZE(heap) == 0 || PyList_GET_ITEM(heap, 0) != top ||
        heap_replace(heap, item) < 0) { /* (the head moved meanwhile, or cannot be ordered) */
        Py_DECREF(item);
        goto out;
    }
    *pos = p;
    *seq += 1;
    *time = key[0];
    r = 1;
    goto out;
error:
    r = -1;
out:
    Py_XDECREF(act);
    Py_XDECREF(bv);
    Py_DECREF(info);
    return r;
}

/* MarketModel._skip_idle's loop over the dry wake-ups at the head of the event queue: see
 * _compiled.dry_wakes. */
static PyObject *
dry_wakes(PyObject *self, PyObject *args)
{
    PyObject *heap, *infos, *bal, *z_o;
    Py_ssize_t pos;
    long long limit, h0, h1, seq;
    if (!PyArg_ParseTuple(args, "O!O!OOnLLLL", &PyList_Type, &heap, &PyDict_Type, &infos, &bal,
                          &z_o, &pos, &limit, &h0, &h1, &seq))
        return NULL;
    Buffers b = {.held = 0};
    Py_buffer *vz = view(&b, z_o, F64, 0, "normals");
    if (vz == NULL)
        return NULL;
    Py_ssize_t nz = items(vz);
    if (pos < 0 || pos > nz) {
        release(&b);
        PyErr_SetString(PyExc_ValueError, "dry_wakes: pos outside the normals");
        return NULL;
    }
    long long n = 0, time = 0;
    int more = 0, r = 1;
    while (r == 1 && PyList_GET_SIZE(heap) > 0) {
        PyObject *top = PyList_GET_ITEM(heap, 0);
        Py_INCREF(top); /* held while its callback and key are read */
        r = dry_wake(heap, top, infos, bal, vz->buf, nz, &pos, limit, h0, h1, &seq, &time, &more);
        Py_DECREF(top);
        n += r == 1;
    }
    release(&b);
    if (r < 0)
        return NULL;
    return Py_BuildValue("LnLLi", n, pos, seq, time, more);
}

/* ---------------------------------------------------------------------------------------------
 * The claim walk's batch: one tuple per candidate slot (MarketModel._walk_claims). */

/* Item i of a 1-byte (bool) or INDEX buffer. */
static inline int64_t
at_any(const Py_buffer *v, Py_ssize_t i)
{
    return v->itemsize == 1 ? ((const uint8_t *)v->buf)[i] : at(v, i);
}

static PyObject *
walk_claims(PyObject *self, PyObject *args)
{
    PyObject *slots_o, *row_o, *label_o, *time_o, *author_o, *pred_o, *samples, *sample, *names;
    PyObject *own_call, *other_call;
    long long me, take_end, p_lo, p_hi;
    if (!PyArg_ParseTuple(args, "OOOOOLLOLLO!OO!OO", &slots_o, &row_o, &label_o, &time_o,
                          &author_o, &me, &take_end, &pred_o, &p_lo, &p_hi, &PyList_Type, &samples,
                          &sample, &PyList_Type, &names, &own_call, &other_call))
        return NULL;
    Buffers b = {.held = 0};
    Py_buffer *vs, *vr, *vy, *vt, *va, *vp = NULL;
    if (!(vs = view(&b, slots_o, INDEX, 0, "slots")) || !(vr = view(&b, row_o, INDEX, 0, "row")) ||
        !(vy = view(&b, label_o, INDEX, 0, "label")) || !(vt = view(&b, time_o, INDEX, 0, "time")) ||
        !(va = view(&b, author_o, INDEX, 0, "author"))) {
        release(&b);
        return NULL;
    }
    if (pred_o != Py_None) {
        /* the model's classes: bools, or integers */
        Py_buffer *v = &b.views[b.held];
        if (PyObject_GetBuffer(pred_o, v, PyBUF_C_CONTIGUOUS | PyBUF_FORMAT) < 0) {
            release(&b);
            return NULL;
        }
        b.held++;
        const char *f = v->format ? v->format : "B";
        char c = f[strlen(f) - 1];
        int ok = (v->itemsize == 1 && (c == '?' || c == 'B')) ||
                 ((c == 'i' || c == 'l' || c == 'q') && (v->itemsize == 4 || v->itemsize == 8));
        if (!ok) {
            release(&b);
            PyErr_Format(PyExc_TypeError, "pred: unexpected item type '%s'", f);
            return NULL;
        }
        vp = v;
    }
    Py_ssize_t n = items(vs), n_book = items(vr);
    if (items(vy) < n_book || items(vt) < n_book || items(va) < n_book) {
        release(&b);
        PyErr_SetString(PyExc_ValueError, "walk_claims: the book's arrays' sizes do not match");
        return NULL;
    }
    /* predictions are given for slots in [max(p_lo, take_end), p_hi), read at slot - p_lo */
    long long first = p_lo > take_end ? p_lo : take_end;
    PyObject *claims = PyList_New(n), *slot_list = PyList_New(n), *authors = PyList_New(n);
    if (!claims || !slot_list || !authors)
        goto fail;
    for (Py_ssize_t i = 0; i < n; i++) {
        int64_t s = at(vs, i);
        if (s < 0 || s >= n_book) {
            PyErr_SetString(PyExc_IndexError, "walk_claims: a slot outside the book");
            goto fail;
        }
        int64_t r = at(vr, s), a = at(va, s);
        if (r < 0 || r >= PyList_GET_SIZE(samples) || a < 0 || a >= PyList_GET_SIZE(names)) {
            PyErr_SetString(PyExc_IndexError, "walk_claims: a row or an author out of range");
            goto fail;
        }
        PyObject *p;
        if (vp != NULL && s >= first && s < p_hi) {
            if (s - p_lo >= items(vp)) {
                PyErr_SetString(PyExc_IndexError, "walk_claims: a slot past the predictions");
                goto fail;
            }
            p = PyLong_FromLongLong(at_any(vp, s - p_lo));
        } else {
            p = Py_NewRef(Py_None);
        }
        PyObject *x = PyList_GET_ITEM(samples, r);
        if (x == Py_None) /* not sampled yet: the market's own sample() makes and keeps it */
            x = PyObject_CallFunction(sample, "L", (long long)r);
        else
            Py_INCREF(x);
        PyObject *so = PyLong_FromLongLong(s), *ao = PyLong_FromLongLong(a);
        PyObject *y = PyLong_FromLongLong(at(vy, s)), *t = PyLong_FromLongLong(at(vt, s));
        PyObject *call = (a == me && s >= take_end) ? own_call : other_call;
        PyObject *c = (p && x && so && ao && y && t)
                          ? PyTuple_Pack(6, call, x, y, t, PyList_GET_ITEM(names, a), p)
                          : NULL;
        Py_XDECREF(p);
        Py_XDECREF(x);
        Py_XDECREF(y);
        Py_XDECREF(t);
        if (c == NULL) {
            Py_XDECREF(so);
            Py_XDECREF(ao);
            goto fail;
        }
        PyList_SET_ITEM(claims, i, c);
        PyList_SET_ITEM(slot_list, i, so);
        PyList_SET_ITEM(authors, i, ao);
    }
    release(&b);
    return Py_BuildValue("NNN", claims, slot_list, authors);
fail:
    release(&b);
    Py_XDECREF(claims);
    Py_XDECREF(slot_list);
    Py_XDECREF(authors);
    return NULL;
}

static PyMethodDef methods[] = {
    {"bit_advance", bit_advance, METH_VARARGS,
     "bit_advance(bits, masks, values, db, scores, y_pos, tol) -> (correct, near)"},
    {"sgd_rows", sgd_rows, METH_VARARGS,
     "sgd_rows(starts, ends, ind, val, sign, w, state, drift, alpha, t0, decay, start, pause)"
     " -> (next row, code)"},
    {"sgd_rows_scored", sgd_rows_scored, METH_VARARGS,
     "sgd_rows_scored(starts, ends, ind, val, sign, w, state, drift, alpha, t0, decay, start, "
     "bits, S, y_pos, acc, ev) -> (next row, code)"},
    {"book_shift", book_shift, METH_VARARGS,
     "book_shift(bits, lo, hi, mask, step, intercept_step, k, score, mag, live, x_l1, w_bound, "
     "x_l1_max, b_bound, tol, out) -> number of slots written to out"},
    {"nb_add", nb_add, METH_VARARGS,
     "nb_add(counts_row, indices, values, alpha, table=None, y=-1, total=None, class_count=None, "
     "drift=None) -> (sum of log1p(values / (old counts + alpha)), sum of values or None"
     "[, the rest done: 1, done without a finite drift: 0, left: -1])"},
    {"nb_drift_table", nb_drift_table, METH_VARARGS,
     "nb_drift_table(out, alpha): out[k] = log1p(1 / (k + alpha))"},
    {"nb_binary_weights", nb_binary_weights, METH_VARARGS,
     "nb_binary_weights(counts0, counts1, table, n0, n1, out) -> 0 when out[j] = (table[counts1[j]] "
     "- n1) - (table[counts0[j]] - n0) was written, else the table size needed (> 0) or -1"},
    {"nb_logs", nb_logs, METH_VARARGS,
     "nb_logs(counts_row, table, out, ids=None) -> 0 when out[j] = table[counts_row[j]] was "
     "written, else the table size needed (> 0) or -1"},
    {"walk_scan", walk_scan, METH_VARARGS,
     "walk_scan(author, me, lo, hi, agree, agree_lo, marks, marks_are_bits, live, table, out, "
     "limit) -> number of slots written to out"},
    {"track_select", track_select, METH_VARARGS,
     "track_select(lo, hi, x_inf, x_l1, cap, live, epoch_at, epoch, d0, d1, d2, threshold, out, "
     "total) -> (number of slots written to out, smallest budget of the others)"},
    {"track_apply", track_apply, METH_VARARGS,
     "track_apply(slots, n, total, fptr, fidx, w, offset, pred, cap, epoch_at, epoch, x_inf, x_l1, "
     "flipped, budget0, x_inf0, x_l1_0) -> (flipped count, smallest budget, max x_inf, max x_l1)"},
    {"csr_sums", csr_sums, METH_VARARGS,
     "csr_sums(indptr, indices, w, out): out[i] = sum of w over row i's indices (values all 1)"},
    {"walk_claims", walk_claims, METH_VARARGS,
     "walk_claims(slots, row, label, time, author, me, take_end, pred, p_lo, p_hi, samples, "
     "sample, names, own_call, other_call) -> (claims, slot list, author list)"},
    {"dry_wakes", dry_wakes, METH_VARARGS,
     "dry_wakes(heap, infos, balances, normals, pos, limit, h0, h1, seq) -> (n, pos, seq, time, "
     "need)"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "_kernels", "The learners' compiled loops (see _kernels.c).", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__kernels(void)
{
    choose_loops();
    str_active = PyUnicode_InternFromString("active");
    str_mean_wait = PyUnicode_InternFromString("mean_wait_s");
    str_stdev_wait = PyUnicode_InternFromString("stdev_wait_s");
    zero = PyLong_FromLong(0);
    if (!str_active || !str_mean_wait || !str_stdev_wait || !zero)
        return NULL;
    return PyModule_Create(&module);
}
