"""Hypothesis strategies from the JSON schemas of an OpenAPI document (the subset FastAPI
emits: $ref, anyOf/oneOf/allOf, enum/const, string pattern/length, number bounds, arrays,
objects with required/additionalProperties)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

JSON = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)


class SchemaStrategies:
    """Builds strategies for schemas of one OpenAPI document."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.components = spec.get("components", {}).get("schemas", {})

    def resolve(self, schema: dict[str, Any]) -> dict[str, Any]:
        while "$ref" in schema:
            schema = self.components[schema["$ref"].rsplit("/", 1)[-1]]
        return schema

    def valid(self, schema: dict[str, Any], depth: int = 0) -> st.SearchStrategy[Any]:
        s = self.resolve(schema)
        for key in ("anyOf", "oneOf"):
            if key in s:
                return st.one_of([self.valid(x, depth) for x in s[key]])
        if "allOf" in s:
            return self.valid(s["allOf"][0], depth)
        if "const" in s:
            return st.just(s["const"])
        if "enum" in s:
            return st.sampled_from(s["enum"])
        kind = s.get("type")
        if kind == "string":
            if "pattern" in s:
                return st.from_regex(s["pattern"], fullmatch=True)
            return st.text(
                min_size=s.get("minLength", 0), max_size=min(s.get("maxLength", 30), 30)
            ).filter(lambda v: len(v) >= s.get("minLength", 0))
        if kind == "integer":
            lo, hi = s.get("minimum"), s.get("maximum")
            return st.integers(
                int(lo) if lo is not None else -1000, int(hi) if hi is not None else 1000
            )
        if kind == "number":
            return st.floats(s.get("minimum", -1000.0), s.get("maximum", 1000.0), allow_nan=False)
        if kind == "boolean":
            return st.booleans()
        if kind == "null":
            return st.none()
        if kind == "array":
            items = s.get("items", {})
            lo = s.get("minItems", 0)
            return st.lists(
                self.valid(items, depth + 1),
                min_size=lo,
                max_size=max(lo, min(s.get("maxItems", 3), 3)),
            )
        if kind == "object" or "properties" in s:
            return self.object(s, depth)
        return JSON

    def object(self, s: dict[str, Any], depth: int) -> st.SearchStrategy[dict[str, Any]]:
        props: dict[str, Any] = s.get("properties", {})
        required = set(s.get("required", ()))
        if not props:
            extra = s.get("additionalProperties", True)
            values = self.valid(extra, depth + 1) if isinstance(extra, dict) else JSON
            return st.dictionaries(
                st.from_regex(r"[a-z]{1,8}", fullmatch=True), values, max_size=3 if depth < 2 else 0
            )
        req = st.fixed_dictionaries(
            {k: self.valid(v, depth + 1) for k, v in props.items() if k in required}
        )
        opt = st.fixed_dictionaries(
            {},
            optional={k: self.valid(v, depth + 1) for k, v in props.items() if k not in required},
        )
        return st.builds(lambda a, b: {**a, **b}, req, opt)

    def invalid(self, schema: dict[str, Any]) -> st.SearchStrategy[Any]:
        """Values that mostly violate ``schema``: wrong types, extra or missing fields."""
        s = self.resolve(schema)
        options: list[st.SearchStrategy[Any]] = [JSON]
        if s.get("type") == "object" or "properties" in s:
            base = self.valid(s)
            options.append(base.map(lambda d: {**d, "unexpected_field": 1}))
            required = list(s.get("required", ()))
            if required:
                options.append(
                    st.tuples(base, st.sampled_from(required)).map(
                        lambda t: {k: v for k, v in t[0].items() if k != t[1]}
                    )
                )
            for name, prop in s.get("properties", {}).items():
                options.append(
                    base.flatmap(lambda d, n=name: JSON.map(lambda v, d=d, n=n: {**d, n: v}))
                )
                del prop
        return st.one_of(options)
