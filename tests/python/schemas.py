"""The structured-output schema suite: 32 pydantic models, each with a prompt that asks for it.

`SUITE` is a list of (name, pydantic model, prompt). The JSON Schema a client sends is
`Model.model_json_schema()`, which exercises what the grammar converter must cover: types, required
and optional properties, enums and consts (Literal, Enum), arrays with bounds (conlist), tuples
(prefixItems), nested objects and models reused through $defs/$ref, unions (anyOf), nullable fields,
maps (additionalProperties), string lengths and patterns, numeric bounds, and the formats date,
date-time, time and uuid. Strings carry a max_length so that a 135M model cannot run on forever
inside one string; the grammar must still keep every output inside the schema.
"""

from datetime import date, datetime, time
from enum import Enum
from typing import Annotated, Literal, Optional, Union
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

Short = Annotated[str, Field(max_length=24)]
Word = Annotated[str, Field(min_length=1, max_length=12)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class City(Strict):
    name: Short
    country: Short


class Weather(Strict):
    city: Short
    temperature: int
    sunny: bool


class Person(Strict):
    name: Short
    age: Annotated[int, Field(ge=0, le=130)]


class Color(str, Enum):
    red = "red"
    green = "green"
    blue = "blue"


class Favourite(Strict):
    color: Color


class Sentiment(Strict):
    label: Literal["positive", "negative", "neutral"]
    score: Annotated[float, Field(ge=0, le=1)]


class Tags(Strict):
    tags: Annotated[list[Word], Field(min_length=1, max_length=4)]


class Numbers(Strict):
    values: Annotated[list[int], Field(min_length=3, max_length=3)]


class Point(Strict):
    x: float
    y: float


class Polygon(Strict):
    points: Annotated[list[Point], Field(min_length=3, max_length=4)]


class Address(Strict):
    street: Short
    city: Short
    zip: Annotated[str, Field(pattern=r"^[0-9]{5}$")]


class Customer(Strict):
    name: Short
    address: Address


class Team(Strict):
    """Person twice: one $defs entry, two $refs."""

    lead: Person
    members: Annotated[list[Person], Field(min_length=1, max_length=2)]


class Event(Strict):
    title: Short
    day: date


class Meeting(Strict):
    topic: Short
    starts: datetime


class Alarm(Strict):
    at: time


class Ticket(Strict):
    id: UUID
    open: bool


class Cat(Strict):
    kind: Literal["cat"]
    lives: Annotated[int, Field(ge=1, le=9)]


class Dog(Strict):
    kind: Literal["dog"]
    good: bool


class Pet(Strict):
    pet: Union[Cat, Dog]


class Maybe(Strict):
    nickname: Optional[Short]
    age: Optional[int]


class Inventory(Strict):
    stock: Annotated[dict[Word, int], Field(max_length=3)]


class Version(Strict):
    version: Annotated[str, Field(pattern=r"^[0-9]+\.[0-9]+\.[0-9]+$")]


class Pair(Strict):
    pair: tuple[Short, int]


class Flags(Strict):
    debug: bool
    verbose: bool
    quiet: bool


class Constant(Strict):
    api: Literal["v1"]
    ok: bool


class Book(Strict):
    title: Short
    author: Short
    year: Annotated[int, Field(ge=1400, le=2100)]
    genres: Annotated[list[Literal["fiction", "science", "history", "poetry"]], Field(min_length=1, max_length=2)]


class Library(Strict):
    books: Annotated[list[Book], Field(min_length=1, max_length=2)]


class Step(Strict):
    n: Annotated[int, Field(ge=1, le=10)]
    action: Short


class Recipe(Strict):
    dish: Short
    steps: Annotated[list[Step], Field(min_length=2, max_length=3)]


class Grid(Strict):
    rows: Annotated[list[Annotated[list[Annotated[int, Field(ge=0, le=9)]], Field(min_length=2, max_length=2)]], Field(min_length=2, max_length=2)]


class Answer(Strict):
    answer: Literal["yes", "no"]


class Rating(Strict):
    stars: Literal[1, 2, 3, 4, 5]
    comment: Short


class Measurement(Strict):
    value: Annotated[float, Field(gt=-100, lt=100)]
    unit: Literal["C", "F", "K"]


class Contact(Strict):
    email: Annotated[str, Field(pattern=r"^[a-z]{1,8}@[a-z]{1,8}\.(com|org)$")]
    phone: Optional[Annotated[str, Field(pattern=r"^[0-9]{3}-[0-9]{4}$")]] = None


class Matrix(Strict):
    name: Word
    cells: Annotated[list[Annotated[float, Field(ge=0, le=1)]], Field(min_length=1, max_length=4)]
    owner: Optional[Person] = None


class Open(BaseModel):
    """additionalProperties left open: the only required key is `id`."""

    id: int


SUITE = [
    ("city", City, "Name a city and its country."),
    ("weather", Weather, "Describe the weather in Paris."),
    ("person", Person, "Invent a person."),
    ("favourite", Favourite, "What is your favourite color?"),
    ("sentiment", Sentiment, "Classify the sentiment of: I love this!"),
    ("tags", Tags, "Give tags for a blog post about cooking."),
    ("numbers", Numbers, "Give three numbers."),
    ("point", Point, "Give a point in the plane."),
    ("polygon", Polygon, "Give a triangle."),
    ("address", Address, "Give an address in the United States."),
    ("customer", Customer, "Invent a customer with an address."),
    ("team", Team, "Describe a small team."),
    ("event", Event, "Name a historical event and its date."),
    ("meeting", Meeting, "Schedule a meeting."),
    ("alarm", Alarm, "Set an alarm for the morning."),
    ("ticket", Ticket, "Open a support ticket."),
    ("pet", Pet, "Describe a pet."),
    ("maybe", Maybe, "Tell me a nickname if you have one."),
    ("inventory", Inventory, "List a shop's stock of fruit."),
    ("version", Version, "What is the latest version of the software?"),
    ("pair", Pair, "Give a name and a number."),
    ("flags", Flags, "Which logging flags are on?"),
    ("constant", Constant, "Report the API status."),
    ("book", Book, "Recommend a book."),
    ("library", Library, "List books in a library."),
    ("recipe", Recipe, "Give a recipe for toast."),
    ("grid", Grid, "Fill a 2 by 2 grid with digits."),
    ("answer", Answer, "Is the sky blue?"),
    ("rating", Rating, "Rate a restaurant."),
    ("measurement", Measurement, "What is the temperature outside?"),
    ("contact", Contact, "Give a contact email."),
    ("matrix", Matrix, "Give a named list of probabilities."),
    ("open", Open, "Give a record with an id."),
]
