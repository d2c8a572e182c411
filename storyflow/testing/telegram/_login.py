"""Signing in on a fresh auth key: login codes, 2FA over SRP, QR login tokens, logging out.

    auth.sendCode phone            → auth.sentCode (sentCodeTypeApp); the code waits on the server
    auth.signIn phone hash code    → auth.authorization, or SESSION_PASSWORD_NEEDED when 2FA is on
    account.getPassword            → SRP parameters (salts, p, g = 3, srp_id, B)
    auth.checkPassword srp_id A M1 → auth.authorization, or PASSWORD_HASH_INVALID
    auth.exportLoginToken          → a QR token; once another device of the account accepts it, the
                                     waiting key gets updateLoginToken and the next export signs it in
    auth.logOut                    → the key is forgotten (its next connection gets -404)

Handlers have `_api`'s shape. What they record is also what tests read through the server
(`last_login_code`, `set_password`, `accept_login_token`, …).
"""

from __future__ import annotations

import datetime
import os
import re
import secrets
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import attrs
from telethon.tl import functions, types
from telethon.tl.tlobject import TLRequest

from . import _render as render
from ._errors import RpcFailure, bad_request
from ._srp import PasswordVerifier, SrpChallenge, kdf_algo
from ._state import Account, AuthKeyRecord, now_utc, random_long

if TYPE_CHECKING:
    from ._api import Handler
    from ._connection import Connection
    from ._server import LoopbackTelegram

LOGIN_CODE_LENGTH = 5
LOGIN_CODE_LIFETIME = datetime.timedelta(minutes=5)
LOGIN_TOKEN_LIFETIME = datetime.timedelta(seconds=30)
_PHONE_DIGITS = re.compile(r"\d{5,15}")
_PHONE_DECORATION = re.compile(r"[+()\s-]")


def normalize_phone(phone: str) -> str | None:
    """'+999 000-0001' → '9990000001' (as Telethon's `parse_phone`), None when it is no phone number."""
    digits = _PHONE_DECORATION.sub("", phone)
    return digits if _PHONE_DIGITS.fullmatch(digits) else None


def _session_password_needed() -> RpcFailure:
    return RpcFailure(401, "SESSION_PASSWORD_NEEDED")


def _unregistered() -> RpcFailure:
    return RpcFailure(401, "AUTH_KEY_UNREGISTERED")


@attrs.define(eq=False)
class LoginCode:
    """A code "sent to the app" of an account; only the key that asked for it may use it."""

    phone: str
    account: Account
    phone_code_hash: str
    code: str
    key_id: int
    expires: datetime.datetime


@attrs.define(eq=False)
class LoginToken:
    """A QR login token exported on a key that wants to sign in."""

    token: bytes
    key_id: int
    expires: datetime.datetime
    accepted_by: Account | None = None


@attrs.define(eq=False)
class Logins:
    """The server's login state: codes sent, 2FA verifiers, SRP challenges and QR tokens in flight."""

    server: LoopbackTelegram
    # Codes are random unless a test (or the standalone server's --login-code) fixes them.
    fixed_code: str | None = None
    on_code: Callable[[Account, str], None] | None = None
    _codes: dict[str, LoginCode] = attrs.field(init=False, factory=dict)  # by phone: the latest code
    _passwords: dict[int, PasswordVerifier] = attrs.field(init=False, factory=dict)  # by user id
    _awaiting_password: dict[int, Account] = attrs.field(init=False, factory=dict)  # by key id
    _challenges: dict[int, SrpChallenge] = attrs.field(init=False, factory=dict)  # by key id
    _tokens: dict[bytes, LoginToken] = attrs.field(init=False, factory=dict)
    _last_token: bytes | None = attrs.field(init=False, default=None)

    def handlers(self) -> dict[type[TLRequest], Handler]:
        auth = functions.auth
        return {
            auth.SendCodeRequest: self.send_code,
            auth.ResendCodeRequest: self.resend_code,
            auth.CancelCodeRequest: self.cancel_code,
            auth.SignInRequest: self.sign_in,
            functions.account.GetPasswordRequest: self.get_password,
            auth.CheckPasswordRequest: self.check_password,
            auth.ExportLoginTokenRequest: self.export_login_token,
            auth.ImportLoginTokenRequest: self.import_login_token,
            auth.AcceptLoginTokenRequest: self.accept_login_token_request,
            auth.LogOutRequest: self.log_out,
        }

    # --- the test-facing side (through LoopbackTelegram) ----------------------------------------

    def last_code(self, phone: str) -> str | None:
        pending = self._codes.get(normalize_phone(phone) or phone)
        return None if pending is None else pending.code

    def expire_code(self, phone: str) -> None:
        pending = self._codes.get(normalize_phone(phone) or phone)
        if pending is not None:
            pending.expires = now_utc() - datetime.timedelta(seconds=1)

    def set_password(self, account: Account, password: str | None, *, hint: str | None) -> None:
        if password is None:
            self._passwords.pop(account.user_id, None)
        else:
            self._passwords[account.user_id] = PasswordVerifier.create(password, hint=hint)

    @property
    def last_token(self) -> bytes | None:
        """The latest exported token while it still waits to be accepted or used."""
        token = self._tokens.get(self._last_token or b"")
        return None if token is None or token.accepted_by is not None else token.token

    def accept_token(self, account: Account, token: bytes) -> LoginToken:
        """Another device of `account` scanned the QR code: the waiting key hears of it at once."""
        found = self._live_token(token)
        if found.accepted_by is not None:
            raise bad_request("AUTH_TOKEN_ALREADY_ACCEPTED")
        found.accepted_by = account
        update = types.UpdateShort(update=types.UpdateLoginToken(), date=now_utc())
        for connection in self.server.connections_on_key(found.key_id):
            if connection.receives_updates:
                connection.push_updates(update)
        self.server.notify()
        return found

    # --- codes ----------------------------------------------------------------------------------

    def _new_code(self) -> str:
        if self.fixed_code is not None:
            return self.fixed_code
        return "".join(secrets.choice("0123456789") for _ in range(LOGIN_CODE_LENGTH))

    def _announce(self, pending: LoginCode) -> None:
        self.server.notify()
        if self.on_code is not None:
            self.on_code(pending.account, pending.code)

    def _sent_code(self, pending: LoginCode) -> types.auth.SentCode:
        return types.auth.SentCode(
            type=types.auth.SentCodeTypeApp(length=len(pending.code)), phone_code_hash=pending.phone_code_hash
        )

    def _phone(self, phone_number: str) -> str:
        phone = normalize_phone(phone_number)
        if phone is None:
            raise bad_request("PHONE_NUMBER_INVALID")
        return phone

    def send_code(self, connection: Connection, request: Any) -> types.auth.SentCode:
        phone = self._phone(request.phone_number)
        account = self.server.account_by_phone(phone)
        if account is None:
            # Telegram would offer a sign-up, which third-party apps may no longer do.
            raise bad_request("PHONE_NUMBER_INVALID")
        pending = LoginCode(
            phone=phone,
            account=account,
            phone_code_hash=os.urandom(9).hex(),
            code=self._new_code(),
            key_id=connection.key_id,
            expires=now_utc() + LOGIN_CODE_LIFETIME,
        )
        self._codes[phone] = pending
        self._announce(pending)
        return self._sent_code(pending)

    def _pending_code(self, connection: Connection, phone: str, phone_code_hash: str) -> LoginCode:
        if not phone_code_hash:
            raise bad_request("PHONE_CODE_HASH_EMPTY")
        pending = self._codes.get(phone)
        # A superseded hash, or one handed to another key, is as good as expired.
        if pending is None or pending.phone_code_hash != phone_code_hash or pending.key_id != connection.key_id:
            raise bad_request("PHONE_CODE_EXPIRED")
        if pending.expires <= now_utc():
            del self._codes[phone]
            raise bad_request("PHONE_CODE_EXPIRED")
        return pending

    def resend_code(self, connection: Connection, request: Any) -> types.auth.SentCode:
        pending = self._pending_code(connection, self._phone(request.phone_number), request.phone_code_hash)
        pending.code = self._new_code()
        pending.expires = now_utc() + LOGIN_CODE_LIFETIME
        self._announce(pending)
        return self._sent_code(pending)

    def cancel_code(self, connection: Connection, request: Any) -> bool:
        phone = self._phone(request.phone_number)
        self._pending_code(connection, phone, request.phone_code_hash)
        del self._codes[phone]
        return True

    def sign_in(self, connection: Connection, request: Any) -> types.auth.Authorization:
        phone = self._phone(request.phone_number)
        pending = self._pending_code(connection, phone, request.phone_code_hash)
        if not request.phone_code:
            raise bad_request("PHONE_CODE_EMPTY")
        if request.phone_code != pending.code:
            raise bad_request("PHONE_CODE_INVALID")
        del self._codes[phone]
        return self._signed_in(connection.auth, pending.account)

    def _signed_in(self, auth: AuthKeyRecord, account: Account) -> types.auth.Authorization:
        """The account proved itself on this key: ask for the password first when it has one."""
        if account.user_id in self._passwords:
            self._awaiting_password[auth.key_id] = account
            raise _session_password_needed()
        self.server.authorize_key(auth, account)
        return types.auth.Authorization(user=render.user(account, account))

    # --- 2FA ------------------------------------------------------------------------------------

    def get_password(self, connection: Connection, request: Any) -> types.account.Password:
        account = self._awaiting_password.get(connection.key_id) or connection.account
        new_algo = kdf_algo(os.urandom(8), os.urandom(16))
        new_secure_algo = types.SecurePasswordKdfAlgoPBKDF2HMACSHA512iter100000(salt=os.urandom(8))
        password = self._passwords.get(account.user_id)
        if password is None:
            self._challenges.pop(connection.key_id, None)
            return types.account.Password(
                new_algo=new_algo, new_secure_algo=new_secure_algo, secure_random=os.urandom(256), has_password=False
            )
        challenge = SrpChallenge.start(password)
        self._challenges[connection.key_id] = challenge
        return types.account.Password(
            new_algo=new_algo,
            new_secure_algo=new_secure_algo,
            secure_random=os.urandom(256),
            has_password=True,
            current_algo=password.algo,
            srp_B=challenge.srp_B,
            srp_id=challenge.srp_id,
            hint=password.hint,
        )

    def check_password(self, connection: Connection, request: Any) -> types.auth.Authorization:
        account = self._awaiting_password.get(connection.key_id)
        if account is None:
            raise _unregistered() if not connection.authorized else bad_request("SRP_ID_INVALID")
        # Every proof answers one challenge: a retry needs a fresh account.getPassword, as Telethon does.
        challenge = self._challenges.pop(connection.key_id, None)
        check = request.password
        if challenge is None or not isinstance(check, types.InputCheckPasswordSRP) or check.srp_id != challenge.srp_id:
            raise bad_request("SRP_ID_INVALID")
        password = self._passwords.get(account.user_id)
        if password is None:
            raise bad_request("SRP_PASSWORD_CHANGED")
        if not challenge.check(password, check.A, check.M1):
            raise bad_request("PASSWORD_HASH_INVALID")
        del self._awaiting_password[connection.key_id]
        self.server.authorize_key(connection.auth, account)
        return types.auth.Authorization(user=render.user(account, account))

    # --- QR login -------------------------------------------------------------------------------

    def _live_token(self, token: bytes) -> LoginToken:
        found = self._tokens.get(token)
        if found is None:
            raise bad_request("AUTH_TOKEN_INVALID")
        if found.expires <= now_utc():
            del self._tokens[token]
            raise bad_request("AUTH_TOKEN_EXPIRED")
        return found

    def _token_result(
        self, connection: Connection, found: LoginToken
    ) -> types.auth.LoginToken | types.auth.LoginTokenSuccess:
        if found.accepted_by is None:
            return types.auth.LoginToken(expires=found.expires, token=found.token)
        del self._tokens[found.token]
        return types.auth.LoginTokenSuccess(authorization=self._signed_in(connection.auth, found.accepted_by))

    def export_login_token(
        self, connection: Connection, request: Any
    ) -> types.auth.LoginToken | types.auth.LoginTokenSuccess:
        mine = [t for t in self._tokens.values() if t.key_id == connection.key_id]
        accepted = next((t for t in mine if t.accepted_by is not None), None)
        if accepted is not None:
            return self._token_result(connection, accepted)
        for old in mine:
            del self._tokens[old.token]
        token = LoginToken(token=os.urandom(32), key_id=connection.key_id, expires=now_utc() + LOGIN_TOKEN_LIFETIME)
        self._tokens[token.token] = token
        self._last_token = token.token
        self.server.notify()
        return types.auth.LoginToken(expires=token.expires, token=token.token)

    def import_login_token(
        self, connection: Connection, request: Any
    ) -> types.auth.LoginToken | types.auth.LoginTokenSuccess:
        found = self._live_token(request.token)
        if found.key_id != connection.key_id:
            raise bad_request("AUTH_TOKEN_INVALID")
        return self._token_result(connection, found)

    def accept_login_token_request(self, connection: Connection, request: Any) -> types.Authorization:
        found = self.accept_token(connection.account, request.token)
        device = next(
            (c.init_connection for c in self.server.connections_on_key(found.key_id) if c.init_connection), None
        )
        now = now_utc()
        return types.Authorization(
            hash=random_long(),
            device_model=device.device_model if device else "",
            platform="",
            system_version=device.system_version if device else "",
            api_id=device.api_id if device else 0,
            app_name="",
            app_version=device.app_version if device else "",
            date_created=now,
            date_active=now,
            ip=self.server.host,
            country="",
            region="",
        )

    # --- logging out ----------------------------------------------------------------------------

    def log_out(self, connection: Connection, request: Any) -> types.auth.LoggedOut:
        if not connection.authorized:
            raise _unregistered()
        self.server.drop_key(connection.auth)
        return types.auth.LoggedOut()
