"""A small, safe arithmetic evaluator for experiment files (derived parameters and ``where`` filters).

Expressions are parsed with :mod:`ast` and evaluated by walking the tree; Python's ``eval``/``exec`` are never
used. Allowed:

- numbers (int, float) and names (looked up in the mapping given to :meth:`Expression.evaluate`);
- binary ``+ - * / // % **``, unary ``+ -``, parentheses;
- comparisons ``== != < <= > >=`` (chains too) and ``and``, ``or``, ``not``;
- calls of ``int``, ``float``, ``round``, ``min``, ``max``, ``abs`` with positional arguments.

Everything else (attribute access, subscripts, lambdas, other calls, keyword arguments, strings, containers,
comprehensions, ...) is rejected when the expression is compiled. Arithmetic only accepts numbers (a name bound to
a string can be compared with ``==``/``!=`` but not computed with), and exponents are bounded, so an expression can
neither reach Python internals nor run away with memory or time.

    >>> Expression("int(4.76 * (40 - s) // 2.21)").evaluate({"s": 5})
    75
"""
import ast
import math
import operator

FUNCTIONS = {"int": int, "float": float, "round": round, "min": min, "max": max, "abs": abs}
MAX_LENGTH = 1000          # characters of an expression
MAX_EXPONENT = 10_000      # |exponent| of ** and size of an integer power (keep powers cheap)
MAX_POWER_BITS = 100_000

_BINOPS = {ast.Add: operator.add, ast.Sub: operator.sub, ast.Mult: operator.mul, ast.Div: operator.truediv,
           ast.FloorDiv: operator.floordiv, ast.Mod: operator.mod, ast.Pow: operator.pow}
_UNARY = {ast.UAdd: operator.pos, ast.USub: operator.neg, ast.Not: operator.not_}
_COMPARE = {ast.Eq: operator.eq, ast.NotEq: operator.ne, ast.Lt: operator.lt, ast.LtE: operator.le,
            ast.Gt: operator.gt, ast.GtE: operator.ge}
_ARITY = {"int": (1, 1), "float": (1, 1), "round": (1, 2), "min": (1, None), "max": (1, None), "abs": (1, 1)}


class ExpressionError(ValueError):
    """A malformed or forbidden expression, or one that fails to evaluate (message says which)."""


ALLOWED = ("numbers, names, + - * / // % **, unary + -, parentheses, comparisons, and/or/not and the functions "
           + ", ".join(FUNCTIONS))


def _describe(node) -> str:
    names = {ast.Attribute: "attribute access", ast.Subscript: "subscript", ast.Lambda: "lambda",
             ast.Call: "call", ast.List: "list", ast.Tuple: "tuple", ast.Dict: "dict", ast.Set: "set",
             ast.IfExp: "conditional expression", ast.NamedExpr: "assignment expression",
             ast.JoinedStr: "f-string", ast.Starred: "starred argument"}
    for cls, label in names.items():
        if isinstance(node, cls):
            return label
    if isinstance(node, ast.Constant):
        return f"{type(node.value).__name__} constant {node.value!r}"
    if isinstance(node, (ast.ListComp, ast.SetComp, ast.DictComp, ast.GeneratorExp)):
        return "comprehension"
    if isinstance(node, (ast.operator, ast.unaryop, ast.cmpop)):
        return f"operator {type(node).__name__}"
    return type(node).__name__


class Expression:
    """A compiled expression: ``names`` are the variables it reads, ``evaluate(env)`` computes it."""

    def __init__(self, text: str):
        if not isinstance(text, str):
            raise ExpressionError(f"must be a string, got {text!r}")
        self.text = text
        if len(text) > MAX_LENGTH:
            raise ExpressionError(f"longer than {MAX_LENGTH} characters")
        try:
            tree = ast.parse(text.strip(), mode="eval")
            self.names: set[str] = set()
            self._check(tree.body)
        except SyntaxError as e:
            raise ExpressionError(f"syntax error: {e.msg}") from None
        except (RecursionError, MemoryError):
            raise ExpressionError("nested too deeply") from None
        self._tree = tree.body

    def _check(self, node):
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise ExpressionError(f"not allowed: {_describe(node)} (numbers only)")
        elif isinstance(node, ast.Name):
            self.names.add(node.id)
        elif isinstance(node, ast.BinOp):
            if type(node.op) not in _BINOPS:
                raise ExpressionError(f"not allowed: {_describe(node.op)}; allowed: {ALLOWED}")
            self._check(node.left)
            self._check(node.right)
        elif isinstance(node, ast.UnaryOp):
            if type(node.op) not in _UNARY:
                raise ExpressionError(f"not allowed: {_describe(node.op)}; allowed: {ALLOWED}")
            self._check(node.operand)
        elif isinstance(node, ast.BoolOp):
            for v in node.values:
                self._check(v)
        elif isinstance(node, ast.Compare):
            for op in node.ops:
                if type(op) not in _COMPARE:
                    raise ExpressionError(f"not allowed: {_describe(op)}; allowed comparisons: == != < <= > >=")
            self._check(node.left)
            for c in node.comparators:
                self._check(c)
        elif isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in FUNCTIONS:
                what = node.func.id if isinstance(node.func, ast.Name) else _describe(node.func)
                raise ExpressionError(f"not allowed: call of {what}; allowed functions: {', '.join(FUNCTIONS)}")
            if node.keywords or any(isinstance(a, ast.Starred) for a in node.args):
                raise ExpressionError(f"{node.func.id}() takes positional arguments only")
            lo, hi = _ARITY[node.func.id]
            if len(node.args) < lo or (hi is not None and len(node.args) > hi):
                want = str(lo) if lo == hi else f"{lo} or more" if hi is None else f"{lo} to {hi}"
                raise ExpressionError(f"{node.func.id}() takes {want} argument(s), got {len(node.args)}")
            for a in node.args:
                self._check(a)
        else:
            raise ExpressionError(f"not allowed: {_describe(node)}; allowed: {ALLOWED}")

    def evaluate(self, env: dict):
        """Value of the expression with the variables of ``env`` (int, float or bool)."""
        missing = sorted(self.names - set(env))
        if missing:
            raise ExpressionError(f"unknown name {missing[0]!r}; available: {', '.join(sorted(env)) or '(none)'}")
        try:
            return self._eval(self._tree, env)
        except ExpressionError:
            raise
        except (ArithmeticError, ValueError, TypeError) as e:
            raise ExpressionError(f"cannot be evaluated: {e}") from None
        except RecursionError:
            raise ExpressionError("nested too deeply") from None

    def _eval(self, node, env):
        if isinstance(node, ast.Constant):
            return node.value
        if isinstance(node, ast.Name):
            return env[node.id]
        if isinstance(node, ast.BinOp):
            a, b = _number(self._eval(node.left, env)), _number(self._eval(node.right, env))
            if isinstance(node.op, ast.Pow) and (abs(b) > MAX_EXPONENT or (
                    isinstance(a, int) and isinstance(b, int) and a.bit_length() * b > MAX_POWER_BITS)):
                raise ExpressionError(f"power too large (exponent at most {MAX_EXPONENT}, result at most "
                                      f"{MAX_POWER_BITS} bits)")
            try:
                out = _BINOPS[type(node.op)](a, b)
            except (OverflowError, ZeroDivisionError, ValueError) as e:
                raise ExpressionError(str(e) or type(e).__name__) from None
            return _checked(out)
        if isinstance(node, ast.UnaryOp):
            v = self._eval(node.operand, env)
            return _UNARY[type(node.op)](v if isinstance(node.op, ast.Not) else _number(v))
        if isinstance(node, ast.BoolOp):
            if isinstance(node.op, ast.And):
                v = True
                for x in node.values:
                    v = self._eval(x, env)
                    if not v:
                        return v
                return v
            v = False
            for x in node.values:
                v = self._eval(x, env)
                if v:
                    return v
            return v
        if isinstance(node, ast.Compare):
            left = self._eval(node.left, env)
            for op, c in zip(node.ops, node.comparators):
                right = self._eval(c, env)
                if not isinstance(op, (ast.Eq, ast.NotEq)):
                    _number(left), _number(right)
                if not _COMPARE[type(op)](left, right):
                    return False
                left = right
            return True
        if isinstance(node, ast.Call):
            args = [_number(self._eval(a, env)) for a in node.args]
            try:
                return _checked(FUNCTIONS[node.func.id](*args))
            except (OverflowError, ValueError, TypeError) as e:
                raise ExpressionError(f"{node.func.id}(): {e}") from None
        raise ExpressionError(f"not allowed: {_describe(node)}")   # unreachable: _check rejects it

    def __repr__(self):
        return f"Expression({self.text!r})"


def _checked(v):
    """Results stay real, finite and of bounded size (a chain of products could otherwise grow without
    limit)."""
    if isinstance(v, complex):
        raise ExpressionError("result is not a real number")
    if isinstance(v, float) and not math.isfinite(v):
        raise ExpressionError("result is not a finite number")
    if isinstance(v, int) and v.bit_length() > MAX_POWER_BITS:
        raise ExpressionError(f"integer result too large (more than {MAX_POWER_BITS} bits)")
    return v


def _number(v):
    if isinstance(v, (int, float)):
        return v
    raise ExpressionError(f"arithmetic needs numbers, got {v!r}")
