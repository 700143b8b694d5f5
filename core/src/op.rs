//! The primitive ops every backend implements, as data. Composite ops (var, masked_fill,
//! gelu backward, ...) are built from these in `Array` or in the autodiff rules.

/// The constants of GELU's tanh approximation (GPT-2's), `0.5 x (1 + tanh(K (x + C x^3)))`:
/// K = sqrt(2 / pi). One definition for the CPU kernels, the AVX2 kernels and (injected as
/// `GELU_TANH_K`, `GELU_TANH_C`) the WGSL ones.
pub const GELU_TANH_K: f64 = 0.797_884_560_802_865_4;
pub const GELU_TANH_C: f64 = 0.044_715;

/// What a row of the unary op table says about an op besides its kernels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct UnaryInfo {
    pub name: &'static str,
    /// The op code the GPU kernels switch on, injected into WGSL as `OP_<NAME>`.
    pub code: u32,
    /// One instance (scalar parameters filled in) for the tests built from the table.
    pub example: UnaryOp,
    /// An interval where the op is smooth enough for finite-difference gradient checks and
    /// CPU-vs-GPU comparison (inside the domain, away from overflow).
    pub domain: (f64, f64),
    /// The op has a kink (relu, abs, clamps): tests keep samples away from `kinks`.
    pub kinks: &'static [f64],
}

/// The unary op table. Each row declares the variant (with its scalar parameters), its WGSL
/// code, its name and the test domain. From it come the enum, `name`, `code`, the WGSL
/// constants and the tables of the conformance and gradient tests; [`with_plain_unary_ops`]
/// below names the methods. A new op is a row here (and a method name below), its value and
/// derivative in core/src/cpu/elementwise.rs, its two cases in shaders/src/wgsl/unary.wgsl,
/// and a reference value in tests/ops_elementwise.rs (CONTRIBUTING.md has the recipe); a test
/// fails when any of those is missing.
macro_rules! unary_table {
    ($(
        $(#[$doc:meta])*
        $variant:ident $(($tty:ty))? $({ $($field:ident: $fty:ty),* })? = $code:literal, $name:literal,
        example $example:expr, domain [$lo:expr, $hi:expr] $(, kinks $kinks:expr)?;
    )*) => {
        /// Elementwise ops of one operand. Scalar parameters travel in the variant so that a
        /// GPU kernel receives them as uniforms instead of broadcast tensors.
        #[derive(Clone, Copy, Debug, PartialEq)]
        pub enum UnaryOp {
            $($(#[$doc])* $variant $(($tty))? $({ $($field: $fty),* })?,)*
        }

        impl UnaryOp {
            pub fn name(&self) -> &'static str {
                match self {
                    $(UnaryOp::$variant { .. } => $name,)*
                }
            }

            /// The op code of the GPU kernels (`OP_<NAME>` in WGSL).
            pub fn code(&self) -> u32 {
                match self {
                    $(UnaryOp::$variant { .. } => $code,)*
                }
            }
        }

        /// Every unary op, in code order.
        pub const UNARY_OPS: &[UnaryInfo] = &[
            $(UnaryInfo { name: $name, code: $code, example: $example, domain: ($lo, $hi), kinks: unary_table!(@kinks $($kinks)?) },)*
        ];
    };
    (@kinks) => { &[] };
    (@kinks $k:expr) => { $k };
}

unary_table! {
    Neg = 0, "neg", example UnaryOp::Neg, domain [-3.0, 3.0];
    Abs = 1, "abs", example UnaryOp::Abs, domain [-3.0, 3.0], kinks &[0.0];
    Sign = 2, "sign", example UnaryOp::Sign, domain [-3.0, 3.0], kinks &[0.0];
    Exp = 3, "exp", example UnaryOp::Exp, domain [-4.0, 4.0];
    Log = 4, "log", example UnaryOp::Log, domain [0.05, 5.0];
    Sqrt = 5, "sqrt", example UnaryOp::Sqrt, domain [0.05, 5.0];
    Rsqrt = 6, "rsqrt", example UnaryOp::Rsqrt, domain [0.05, 5.0];
    Recip = 7, "recip", example UnaryOp::Recip, domain [0.2, 3.0];
    Sqr = 8, "sqr", example UnaryOp::Sqr, domain [-3.0, 3.0];
    Sin = 9, "sin", example UnaryOp::Sin, domain [-3.0, 3.0];
    Cos = 10, "cos", example UnaryOp::Cos, domain [-3.0, 3.0];
    Tanh = 11, "tanh", example UnaryOp::Tanh, domain [-12.0, 12.0];
    Sigmoid = 12, "sigmoid", example UnaryOp::Sigmoid, domain [-30.0, 30.0];
    Relu = 13, "relu", example UnaryOp::Relu, domain [-3.0, 3.0], kinks &[0.0];
    /// GELU with the tanh approximation (GPT-2's; PyTorch `gelu(approximate="tanh")`).
    GeluTanh = 14, "gelu_tanh", example UnaryOp::GeluTanh, domain [-5.0, 5.0];
    /// Exact GELU, `x * Phi(x)` (PyTorch's default `gelu`).
    GeluErf = 15, "gelu_erf", example UnaryOp::GeluErf, domain [-5.0, 5.0];
    Silu = 16, "silu", example UnaryOp::Silu, domain [-8.0, 8.0];
    /// `x * mul + add`.
    Affine { mul: f64, add: f64 } = 17, "affine", example UnaryOp::Affine { mul: 1.5, add: -0.25 },
        domain [-3.0, 3.0];
    /// `x ^ e` for a scalar exponent.
    Powf(f64) = 18, "powf", example UnaryOp::Powf(2.5), domain [0.1, 3.0];
    /// `max(x, v)` with gradient 1 where x > v (clamp from below).
    MaxScalar(f64) = 19, "max_scalar", example UnaryOp::MaxScalar(0.3), domain [-3.0, 3.0],
        kinks &[0.3];
    /// `min(x, v)`.
    MinScalar(f64) = 20, "min_scalar", example UnaryOp::MinScalar(-0.2), domain [-3.0, 3.0],
        kinks &[-0.2];
    /// `log(1 + e^x)`, the smooth relu (PyTorch `softplus` with beta 1, without its
    /// threshold: computed as `max(x, 0) + log1p(e^-|x|)`, which never overflows).
    Softplus = 21, "softplus", example UnaryOp::Softplus, domain [-8.0, 8.0];
}

/// Calls `$m! { method, try_method => Variant; ... }` for the unary ops without scalar
/// parameters, so that `Array` (core) and `Tensor` (autodiff) define their methods from one
/// list. `exp` is not here: its backward reuses its output, so both write it by hand.
#[macro_export]
macro_rules! with_plain_unary_ops {
    ($m:ident) => {
        $m! {
            neg, try_neg => Neg;
            abs, try_abs => Abs;
            sign, try_sign => Sign;
            log, try_log => Log;
            sqrt, try_sqrt => Sqrt;
            rsqrt, try_rsqrt => Rsqrt;
            recip, try_recip => Recip;
            sqr, try_sqr => Sqr;
            sin, try_sin => Sin;
            cos, try_cos => Cos;
            tanh, try_tanh => Tanh;
            sigmoid, try_sigmoid => Sigmoid;
            relu, try_relu => Relu;
            softplus, try_softplus => Softplus;
            gelu_tanh, try_gelu_tanh => GeluTanh;
            gelu_erf, try_gelu_erf => GeluErf;
            silu, try_silu => Silu;
        }
    };
}

macro_rules! method_names {
    ($($method:ident, $try:ident => $variant:ident;)*) => {
        /// The ops of [`with_plain_unary_ops`]: (method name, op).
        pub const PLAIN_UNARY_METHODS: &[(&str, UnaryOp)] = &[$((stringify!($method), UnaryOp::$variant),)*];
    };
}
with_plain_unary_ops!(method_names);

impl UnaryOp {
    /// The WGSL declarations of the op codes (`const OP_SILU: u32 = 16u;`) and the GELU
    /// constants, prepended to the unary shader so that its switches use names.
    pub fn wgsl_constants() -> String {
        let mut s = String::new();
        for op in UNARY_OPS {
            s += &format!("const OP_{}: u32 = {}u;\n", op.name.to_uppercase(), op.code);
        }
        s += &format!("const GELU_TANH_K: f32 = {GELU_TANH_K:?};\nconst GELU_TANH_C: f32 = {GELU_TANH_C:?};\n");
        s
    }
}

/// The binary op table: variant, WGSL code (`BIN_<NAME>`), name, and whether it compares.
macro_rules! binary_table {
    ($($variant:ident = $code:literal, $name:literal, $cmp:literal;)*) => {
        /// Elementwise ops of two operands of the same dtype. Comparisons give 1 or 0 in that dtype.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum BinaryOp {
            $($variant,)*
        }

        /// Every binary op, in code order.
        pub const BINARY_OPS: &[BinaryOp] = &[$(BinaryOp::$variant,)*];

        impl BinaryOp {
            pub fn name(&self) -> &'static str {
                match self {
                    $(BinaryOp::$variant => $name,)*
                }
            }

            /// The op code of the GPU kernels (`BIN_<NAME>` in WGSL).
            pub fn code(&self) -> u32 {
                match self {
                    $(BinaryOp::$variant => $code,)*
                }
            }

            pub fn is_comparison(&self) -> bool {
                match self {
                    $(BinaryOp::$variant => $cmp,)*
                }
            }
        }
    };
}

binary_table! {
    Add = 0, "add", false;
    Sub = 1, "sub", false;
    Mul = 2, "mul", false;
    Div = 3, "div", false;
    Pow = 4, "pow", false;
    Maximum = 5, "maximum", false;
    Minimum = 6, "minimum", false;
    Eq = 7, "eq", true;
    Ne = 8, "ne", true;
    Lt = 9, "lt", true;
    Le = 10, "le", true;
    Gt = 11, "gt", true;
    Ge = 12, "ge", true;
}

impl BinaryOp {
    /// The WGSL declarations of the op codes (`const BIN_ADD: u32 = 0u;`).
    pub fn wgsl_constants() -> String {
        BINARY_OPS.iter().map(|op| format!("const BIN_{}: u32 = {}u;\n", op.name().to_uppercase(), op.code())).collect()
    }
}

/// Reductions over a set of axes. Arg-reductions return `I32` indices and take one axis.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
    ArgMax,
    ArgMin,
}

impl ReduceOp {
    pub fn name(&self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
            ReduceOp::ArgMax => "argmax",
            ReduceOp::ArgMin => "argmin",
        }
    }
}

/// Normalisation over the last axis.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum NormKind {
    /// `(x - mean) * rstd`, then `* weight + bias`.
    Layer,
    /// `x * rstd` with `rstd = 1/sqrt(mean(x^2) + eps)`, then `* weight`.
    Rms,
}

/// Random distributions the backends can fill a buffer from.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Distribution {
    Uniform {
        lo: f64,
        hi: f64,
    },
    Normal {
        mean: f64,
        std: f64,
    },
    /// 1 with probability `p`, else 0.
    Bernoulli {
        p: f64,
    },
}
