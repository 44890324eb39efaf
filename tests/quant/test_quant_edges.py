"""Linear quantization edge cases: input layouts and dtypes, NaN/inf policy, extreme
ranges, narrow range, bad arguments (messages name the argument) and thread safety."""
import threading

import ml_dtypes
import numpy as np
import pytest

import reference_quant as ref

import fastq as fq

X = (np.random.default_rng(11).standard_normal((6, 10)) * 3).astype(np.float32)


def u32(a):
    return np.array(a, dtype=np.float32, order="C").view(np.uint32)


def check(x, dtype="int8", granularity="tensor", scheme="asymmetric", **kwargs):
    """fastq on ``x`` equals the reference on ``x`` as a float32 C-contiguous array."""
    qt = fq.quantize(x, dtype, scheme=scheme, granularity=ref.as_fastq(fq, granularity), **kwargs)
    x32 = np.array(x, dtype=np.float32, order="C")
    codes, scale, zp = ref.assert_matches(qt, x32, dtype, granularity, scheme, **kwargs)
    assert np.array_equal(u32(fq.dequantize(qt)), u32(ref.dequantize(codes, scale, zp, granularity)))
    return qt


# ----------------------------------------------------------------- inputs
@pytest.mark.parametrize("in_dtype", [np.float16, ml_dtypes.bfloat16, np.float64])
@pytest.mark.parametrize("granularity", ["tensor", ("channel", 1), ("group", 3, -1)])
def test_other_float_inputs_are_quantized_as_float32(in_dtype, granularity):
    # float16/bfloat16 widen exactly; float64 is rounded to float32 once ("a true float32
    # division"), so a float64 input gives the same result as its float32 rounding.
    check(X.astype(in_dtype), "int8", granularity)
    check(X.astype(np.float64) * (1 + 1e-12), "uint4", granularity, "symmetric")


@pytest.mark.parametrize("make", [
    lambda a: a.astype(">f4"),
    lambda a: a[:, ::2],
    lambda a: a[::-1, ::-3],
    lambda a: np.asfortranarray(a),
    lambda a: a.T,
], ids=["big-endian", "strided", "negative-strides", "fortran", "transposed"])
@pytest.mark.parametrize("granularity", ["tensor", ("channel", 0), ("group", 4, -1), ("block", (4, 3))])
def test_layouts(make, granularity):
    check(make(X), "int8", granularity)
    check(make(X), "int4", granularity, "symmetric")


def test_read_only_input_is_not_written():
    x = X.copy()
    x.flags.writeable = False
    check(x, "uint8", ("channel", 0))
    assert np.array_equal(u32(x), u32(X))


def test_python_lists():
    check(X.tolist(), "int8")
    check([[0.5, -1.25], [3.0, 0.0]], "uint8", ("channel", 1))


def test_zero_dimensional():
    qt = check(np.float32(2.5), "int8")
    assert np.asarray(qt.codes()).shape == () and tuple(qt.shape) == ()
    check(np.array(-1.0, np.float32), "int4", scheme="symmetric")


@pytest.mark.parametrize("dtype", ["int8", "uint4", "int2"])
def test_empty(dtype):
    qt = check(np.zeros((0,), np.float32), dtype)
    assert np.asarray(qt.data).size == 0 and np.asarray(qt.codes()).shape == (0,)
    qt = check(np.zeros((0, 3), np.float32), dtype, ("channel", 1))
    assert np.array_equal(np.asarray(qt.scale), np.ones(3, np.float32))
    check(np.zeros((4, 0), np.float32), dtype, ("group", 2, -1))
    for shape, granularity in [((2, 2, 0), ("channel", 0)), ((3, 0), ("channel", 0)),
                               ((0, 5), ("group", 2, 0)), ((2, 0, 4), ("group", 2, -1))]:
        x = np.zeros(shape, np.float32)  # empty, but with parameters: scale 1
        qt = check(x, dtype, granularity)
        assert np.array_equal(np.asarray(qt.scale), np.ones(np.shape(qt.scale), np.float32))
        fake = fq.fake_quantize(x, dtype, granularity=ref.as_fastq(fq, granularity))
        assert fake.shape == shape and fake.dtype == np.float32


def test_partial_last_group_and_block():
    qt = check(X, "int8", ("group", 4, -1))  # 10 = 4 + 4 + 2
    assert np.asarray(qt.scale).shape == (6, 3)
    qt = check(X, "uint4", ("block", (4, 3)))  # 6 = 4 + 2, 10 = 3 + 3 + 3 + 1
    assert np.asarray(qt.scale).shape == (2, 4)


@pytest.mark.parametrize("dtype", ["int4", "uint2"])
@pytest.mark.parametrize("shape,granularity", [
    ((2 * 131072 + 3,), "tensor"),              # one long row, split, with a tail
    ((301, 257), ("channel", 1)),               # odd rows: chunks start on byte bounds
    ((257, 301), ("channel", 0)),
    ((70, 1030), ("channel", 0)),               # rows longer than a kernel block
    ((130, 1001), ("group", 7, -1)),            # partial last group in each row
    ((512, 256), ("group", 32, -1)),            # whole groups: one group per view row
    ((6, 64), ("group", 16, -1)),
    ((999, 131), ("group", 128, 0)),
    ((66, 2, 515), ("block", (4, 2, 65))),
])
def test_packed_in_the_quantize_pass(dtype, shape, granularity):
    """4/2-bit codes are packed by the parallel quantize pass itself; bytes shared by two
    rows, groups or chunks come out whole."""
    x = np.random.default_rng(5).standard_normal(shape).astype(np.float32)
    check(x, dtype, granularity)
    check(x, dtype, granularity, scheme="symmetric")


def test_all_zero_channel():
    x = X.copy()
    x[2] = 0
    qt = check(x, "int8", ("channel", 0))
    assert np.asarray(qt.scale)[2] == 1 and int(np.asarray(qt.zero_point)[2]) == -128
    assert np.array_equal(u32(fq.dequantize(qt)[2]), np.zeros(10, np.uint32))
    qt = check(x, "int8", ("channel", 0), "symmetric")
    assert np.asarray(qt.scale)[2] == 1


def test_granularity_spellings():
    base = fq.quantize(X, "int8")
    for g in ["tensor", fq.PerTensor(), fq.PerBlock(X.shape)]:
        qt = fq.quantize(X, "int8", granularity=g)
        assert np.array_equal(np.asarray(qt.codes()), np.asarray(base.codes()))
        assert u32(qt.scale).ravel()[0] == u32(base.scale).item()
    a = fq.quantize(X, "int4", granularity=fq.PerGroup(3))
    b = fq.quantize(X, "int4", granularity=fq.PerGroup(3, axis=1))
    c = fq.quantize(X, "int4", granularity=fq.PerBlock((1, 3)))
    for other in (b, c):
        assert np.array_equal(np.asarray(a.data), np.asarray(other.data))
        assert np.array_equal(u32(a.scale), u32(other.scale))
    d = fq.quantize(X, "int8", granularity=fq.PerChannel(-2))
    assert np.array_equal(np.asarray(d.codes()),
                          np.asarray(fq.quantize(X, "int8", granularity=fq.PerChannel(0)).codes()))
    p = fq.choose_qparams(X, "int8", granularity=fq.PerChannel(1), observer="minmax")
    assert np.array_equal(u32(p.scale), u32(ref.quantize(X, "int8", ("channel", 1))[1]))


def test_backends_agree(backend):
    import importlib.util

    if backend == "cuda" and importlib.util.find_spec("fastq.kernels.cuda") is None:
        pytest.skip("no fastq.kernels.cuda backend yet")
    x = X[:, :7]
    for dtype, granularity, scheme in [("int8", "tensor", "asymmetric"),
                                       ("uint4", ("group", 3, -1), "symmetric"),
                                       ("int16", ("channel", 0), "symmetric")]:
        qt = fq.quantize(x, dtype, scheme=scheme, granularity=ref.as_fastq(fq, granularity),
                         backend=backend)
        codes, scale, zp = ref.assert_matches(fq.to_host(qt) if backend == "cuda" else qt,
                                              x, dtype, granularity, scheme)


# ----------------------------------------------------------------- narrow range
@pytest.mark.parametrize("scheme", ["asymmetric", "symmetric"])
@pytest.mark.parametrize("dtype", ["int8", "int4", "int16", "uint8"])
def test_narrow_range(dtype, scheme):
    qt = check(X, dtype, ("channel", 0), scheme, narrow_range=True)
    qmin, qmax = ref.qrange(dtype, True)
    codes = np.asarray(qt.codes())
    assert codes.min() >= qmin and codes.max() <= qmax
    if scheme == "symmetric" and dtype == "int8":
        amax = np.max(np.abs(X), axis=1)
        assert np.array_equal(u32(qt.scale), u32(amax / np.float32(127)))
        assert codes.min() == -127  # the most negative value of some channel reaches -qmax


def test_narrow_range_clamps_static_quantization():
    qt = fq.quantize(np.array([-1000.0, 1000.0], np.float32), "int8", scale=np.float32(1),
                     narrow_range=True)
    assert np.asarray(qt.codes()).tolist() == [-127, 127]


# ----------------------------------------------------------------- NaN / inf
NAN_X = np.array([1.0, np.nan, -2.0, 0.5], np.float32)
INF_X = np.array([1.0, np.inf, -2.0, -np.inf], np.float32)


@pytest.mark.parametrize("static", [False, True])
def test_nan_raises_by_default(static):
    kwargs = dict(scale=np.float32(0.1)) if static else {}
    with pytest.raises(ValueError, match="(?i)nan"):
        fq.quantize(NAN_X, "int8", **kwargs)
    with pytest.raises(ValueError, match="(?i)nan"):
        fq.fake_quantize(NAN_X, "int8", **kwargs)
    with pytest.raises(ValueError, match="(?i)nan"):
        fq.choose_qparams(NAN_X, "int8")


def test_inf_raises_with_computed_range_and_saturates_with_given_scale():
    with pytest.raises(ValueError, match="(?i)inf"):
        fq.quantize(INF_X, "int8")
    qt = fq.quantize(INF_X, "int8", scale=np.float32(0.5), zero_point=np.int8(3))
    assert np.asarray(qt.codes()).tolist() == [5, 127, -1, -128]


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int4"])
def test_nan_policy_ignore(dtype):
    x = np.array([1.0, np.nan, -2.0, np.inf, 0.5, -np.inf, -np.nan], np.float32)
    qt = fq.quantize(x, dtype, nan_policy="ignore")
    codes, scale, zp = ref.assert_matches(qt, x, dtype, nan_policy="ignore")
    finite_only = ref.quantize(x[np.isfinite(x)], dtype)[1]
    assert u32(scale).item() == u32(finite_only).item()  # NaN/inf left out of the range
    qmin, qmax = ref.QRANGE[dtype]
    assert codes[1] == zp and codes[6] == zp and codes[3] == qmax and codes[5] == qmin
    qt = fq.quantize(x, dtype, nan_policy="ignore", scale=np.float32(0.25))
    assert np.asarray(qt.codes())[1] == 0 and np.asarray(qt.codes())[3] == qmax


def test_all_nan_ignored_gives_zero_range():
    qt = fq.quantize(np.full(3, np.nan, np.float32), "uint8", nan_policy="ignore")
    assert float(qt.scale) == 1 and int(qt.zero_point) == 0


# ----------------------------------------------------------------- extreme ranges
def test_zero_range_scale_one():
    for dtype in ref.DTYPES:
        for scheme in ["asymmetric", "symmetric"]:
            qt = check(np.zeros((3, 4), np.float32), dtype, ("channel", 0), scheme)
            assert np.all(np.asarray(qt.scale) == 1)


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "int4", "uint2"])
@pytest.mark.parametrize("scheme", ["asymmetric", "symmetric"])
def test_huge_range_gives_finite_scale(dtype, scheme):
    x = np.array([-3e38, 3e38, 1.0, -3.4028235e38, 3.4028235e38, 0.0], np.float32)
    qt = check(x, dtype, scheme=scheme)
    assert np.isfinite(qt.scale) and 0 < float(qt.scale)
    # (q - zero_point) * scale itself may round past float32's max here (SPEC formula):
    # check() has compared the dequantized values, infinities included, with the reference.


def test_tiny_range_scale_floored_at_smallest_normal():
    x = np.array([1e-45, 0.0, -3e-44], np.float32)
    qt = check(x, "int8")
    assert float(qt.scale) == np.finfo(np.float32).tiny


def test_exact_ties_round_half_to_even():
    x = (np.arange(-6, 6) + 0.5).astype(np.float32) * np.float32(0.25)
    qt = fq.quantize(x, "int8", scale=np.float32(0.25))
    assert np.asarray(qt.codes()).tolist() == np.rint(np.arange(-6, 6) + 0.5).astype(int).tolist()
    qt = fq.quantize(np.array([-0.0, 0.0], np.float32), "uint8", scale=np.float32(1),
                     zero_point=np.uint8(7))
    assert np.asarray(qt.codes()).tolist() == [7, 7]


def hard_values(scale, qmin, qmax, zero_point):
    """Ties k + 0.5 over the whole code range and past it, the clip bounds and a half
    step either side of them (and the floats next to those), -0, subnormals, huge values
    and infinities, as multiples of ``scale``."""
    lo, hi = qmin - zero_point, qmax - zero_point
    steps = np.concatenate([np.arange(lo - 3, hi + 3) + 0.5,
                            [lo - 0.5, hi + 0.5, lo - 1, hi + 1, 2.0 ** 22, -(2.0 ** 22)]])
    x = (steps * np.float64(scale)).astype(np.float32)
    x = np.concatenate([x, np.nextafter(x, np.float32(np.inf)),
                        np.nextafter(x, np.float32(-np.inf))])
    special = np.array([-0.0, 0.0, 1e-45, -1e-45, 1e-40, 3e38, -3e38, np.inf, -np.inf],
                       np.float32)
    return np.concatenate([x, special])


@pytest.mark.parametrize("dtype", ["int8", "uint8", "int16", "uint16"])
@pytest.mark.parametrize("zero_point", ["low", "odd", "even", "high"])
@pytest.mark.parametrize("big", [False, True], ids=["serial", "parallel"])
def test_static_ties_bounds_and_specials(dtype, zero_point, big):
    """Per-tensor static codes (rounded by adding 1.5 * 2**23 in the kernel) against the
    reference on the values where rounding and clipping can go wrong."""
    qmin, qmax = ref.qrange(dtype)
    zp = {"low": qmin, "odd": qmin + 1 + (qmax - qmin) // 2 | 1,
          "even": qmin + (qmax - qmin) // 2 & ~1, "high": qmax}[zero_point]
    code_dtype = np.dtype(dtype)
    scale = np.float32(0.37)
    x = hard_values(scale, qmin, qmax, zp)
    if big:  # past the serial threshold: the parallel kernel, rows of 2**14 and a tail
        x = np.tile(x, -(-(1 << 17) // x.size))[:(1 << 17) + 123]
    qt = fq.quantize(x, dtype, scale=scale, zero_point=code_dtype.type(zp))
    want = ref.quantize_codes(x, scale, np.array(zp, code_dtype), dtype)
    assert np.array_equal(qt.codes(), want)


def test_static_without_zero_point_uses_zero():
    qt = fq.quantize(np.array([-3.0, 2.0], np.float32), "uint8", scale=np.float32(1))
    assert np.asarray(qt.codes()).tolist() == [0, 2]


# ----------------------------------------------------------------- bad arguments
def bad(match, fn, *args, **kwargs):
    with pytest.raises((ValueError, TypeError), match=match):
        fn(*args, **kwargs)


def test_bad_dtype_and_x():
    bad("dtype", fq.quantize, X, "int3")
    bad("dtype", fq.quantize, X, 8)
    bad("x", fq.quantize, np.array(["a", "b"]), "int8")
    bad("x", fq.quantize, [[1.0, 2.0], [3.0]], "int8")
    bad("scheme", fq.quantize, X, "int8", scheme="affine")
    bad("nan_policy", fq.quantize, X, "int8", nan_policy="propagate")
    bad("granularity", fq.quantize, X, "int8", granularity="channel-wise")


@pytest.mark.parametrize("axis", [2, -3, 10])
def test_axis_out_of_range(axis):
    bad("axis", lambda: fq.quantize(X, "int8", granularity=fq.PerChannel(axis)))
    bad("axis", lambda: fq.quantize(X, "int8", granularity=fq.PerGroup(2, axis=axis)))


@pytest.mark.parametrize("size", [0, -1])
def test_group_size_below_one(size):
    bad("size", lambda: fq.quantize(X, "int8", granularity=fq.PerGroup(size)))
    bad("block|shape|size", lambda: fq.quantize(X, "int8", granularity=fq.PerBlock((size, 2))))


def test_block_shape_of_wrong_length():
    bad("block|shape", lambda: fq.quantize(X, "int8", granularity=fq.PerBlock((2,))))


@pytest.mark.parametrize("scale", [0.0, -0.5, np.nan, np.inf, -np.inf])
def test_bad_scale_values(scale):
    bad("scale", fq.quantize, X, "int8", scale=np.float32(scale))
    s = np.full(6, 0.1, np.float32)
    s[3] = scale
    bad("scale", fq.quantize, X, "int8", scale=s, granularity=fq.PerChannel(0))


def test_bad_scale_shape():
    bad("scale", fq.quantize, X, "int8", scale=np.full(5, 0.1, np.float32),
        granularity=fq.PerChannel(0))
    bad("scale", fq.quantize, X, "int8", scale=np.full((6, 2), 0.1, np.float32),
        granularity=fq.PerGroup(4))


@pytest.mark.parametrize("dtype,zero_point", [("int8", 128), ("int8", -129), ("uint8", -1),
                                              ("uint8", 256), ("int4", 8), ("uint4", 16),
                                              ("int2", -3), ("uint16", 65536)])
def test_zero_point_outside_code_range(dtype, zero_point):
    bad("zero_point", fq.quantize, X, dtype, scale=np.float32(0.1),
        zero_point=np.array(zero_point, np.int64))
    zp = np.zeros(6, np.int64)
    zp[4] = zero_point
    bad("zero_point", fq.quantize, X, dtype, scale=np.full(6, 0.1, np.float32), zero_point=zp,
        granularity=fq.PerChannel(0))


def test_from_codes_bad_arguments():
    codes = np.array([[1, 9], [0, -2]], np.int8)
    bad("codes", fq.QTensor.from_codes, codes, "int4", np.float32(1), None, fq.PerTensor())
    bad("scale", fq.QTensor.from_codes, codes[:, :1], "int8", np.ones(3, np.float32), None,
        fq.PerChannel(0))
    bad("dtype", fq.QTensor.from_codes, codes, "int5", np.float32(1), None, fq.PerTensor())


# ----------------------------------------------------------------- threads
def test_eight_threads_get_the_single_threaded_bits():
    x = (np.random.default_rng(2).standard_normal((64, 4096)) * 4).astype(np.float32)
    runs = [("int8", fq.PerChannel(0), "symmetric"), ("uint4", fq.PerGroup(128), "asymmetric"),
            ("uint8", fq.PerTensor(), "asymmetric"), ("int4", fq.PerBlock((8, 64)), "symmetric")]
    fq.set_num_threads(1)
    try:
        expected = [np.asarray(fq.quantize(x, d, granularity=g, scheme=s).data).copy()
                    for d, g, s in runs]
        fakes = [fq.fake_quantize(x, d, granularity=g, scheme=s) for d, g, s in runs]
        given = [fq.choose_qparams(x, d, s, g) for d, g, s in runs]  # (static calls' own)
    finally:
        fq.set_num_threads(None)
    results, faked, errors = {}, {}, []

    def work(i):
        try:
            d, g, s = runs[i % len(runs)]
            qp = given[i % len(runs)]
            for _ in range(3):  # (after the first call: the plans' prepared calls)
                results.setdefault(i, []).append(np.asarray(fq.quantize(x, d, granularity=g,
                                                                        scheme=s).data).copy())
                faked.setdefault(i, []).append(fq.fake_quantize(x, d, granularity=g, scheme=s))
                static = fq.quantize(x, d, s, g, scale=qp.scale, zero_point=qp.zero_point)
                results[i].append(np.asarray(static.data).copy())
                faked[i].append(fq.fake_quantize(x, d, s, g, scale=qp.scale,
                                                 zero_point=qp.zero_point))
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    for i, got in results.items():
        for data in got:
            assert np.array_equal(data, expected[i % len(runs)])
        for values in faked[i]:
            assert np.array_equal(values.view(np.uint32), fakes[i % len(runs)].view(np.uint32))


def test_repeated_calls_reuse_only_what_their_arguments_fix():
    """A call's validated plan (shapes, view, kernels) is reused by calls with the same
    arguments; the data, its layout and byte order, and each argument's type still count."""
    from fastq.ops import plans as _plans
    for _ in range(2):  # (the second round runs on cached plans)
        check(X, "int8")
        check(X * 7, "int8")  # other data, same plan
        check(X[:, ::2].copy(), "int8")  # another shape
        check(X.T, "int8")  # same shape as X.T.copy(), not C-contiguous
        check(X.T.copy(), "int8")
        check(X.astype(">f4"), "int8")  # byte order
        check(X, "uint4", ("channel", 1), narrow_range=True)
        check(X, "int8", narrow_range=True)
        check(X, "int8", narrow_range=np.bool_(True))
        with pytest.raises(TypeError, match="narrow_range"):  # (1 == True, but not a bool)
            fq.quantize(X, "int8", narrow_range=1)
        with pytest.raises(ValueError, match="scale"):  # values are checked on every call
            fq.quantize(X, "int8", scale=np.float32(-1))
        with pytest.raises(ValueError, match="NaN"):
            fq.quantize(np.where(X > 2, np.nan, X).astype(np.float32), "int8")
    assert 0 < _plans.cache_size() <= _plans.MAX_PLANS
