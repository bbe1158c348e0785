"""Message classes shared by the tests (registered once, by class name)."""

from dataclasses import dataclass, field

from tern import register_message


@register_message
class Ping:
    def __init__(self, count: int):
        self.count = count

    def __eq__(self, other):
        return type(other) is Ping and other.count == self.count

    def __repr__(self):
        return f"Ping({self.count})"


@register_message
class Pong:
    def __init__(self, count: int):
        self.count = count

    def __eq__(self, other):
        return type(other) is Pong and other.count == self.count

    def __repr__(self):
        return f"Pong({self.count})"


@register_message
@dataclass
class Tick:
    sender_id: int
    seq: int


@register_message
@dataclass
class Quote:
    symbol: str
    bid: float
    ask: float
    seq: int


@register_message
@dataclass
class WithDefaults:
    a: int
    b: str = "x"
    c: list = field(default_factory=list)


@register_message
class Loose:
    def __init__(self, x, **rest):
        self.x = x
        self.rest = rest


@register_message
class Strict:
    def __init__(self, value: int):
        if value < 0:
            raise ValueError("value must be >= 0")
        self.value = value


class LocalOnly:  # deliberately not registered
    def __init__(self, n):
        self.n = n
