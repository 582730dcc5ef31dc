"""The people the tests sign in as, and signing one up in a store."""

from __future__ import annotations

from typing import NamedTuple

from epicme.authorization_server.passwords import hash_password
from epicme.storage import users
from epicme.storage.database import Database


class Person(NamedTuple):
    email: str
    password: str


ALICE = Person("alice@example.com", "alice's long password")
BOB = Person("bob@example.com", "bob's long password")


async def sign_up(db: Database, person: Person) -> str:
    """Creates the account; its user id."""
    return (await users.create_user(db, person.email, hash_password(person.password))).id
