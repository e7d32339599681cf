"""What the layer's offline checks share: one `ok`/`FAIL` line per check,
and the closing count."""

_failures: list[str] = []
_passes = 0


def check(ok: bool, what: str, detail: str = "") -> None:
    global _passes
    if ok:
        _passes += 1
        print(f"  ok    {what}")
    else:
        _failures.append(what)
        print(f"  FAIL  {what}" + (f": {detail}" if detail else ""))


def summary(name: str) -> int:
    """Prints `<name>: N passed, M failed`; the exit status to return."""
    print(f"{name}: {_passes} passed, {len(_failures)} failed")
    return 1 if _failures else 0
