"""The scoring API: FastAPI on uvicorn, started by ``clv-platform serve``.

It serves the online snapshot (``serving/online_features``) from memory and scores posted lines with
the model the ``champion`` alias names, or, under a canary or A/B rollout, the ``challenger`` for the
customers of its arm (a distinct challenger also scores the champion's customers in shadow, logged only);
all are reloaded in the background when they change (:class:`clv_platform.serving.scoring.Live`). It never
opens the warehouse.
"""

import json
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated, Literal

from fastapi import FastAPI, HTTPException
from fastapi import Path as PathParam
from fastapi.exception_handlers import http_exception_handler
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, NaiveDatetime
from starlette.exceptions import HTTPException as StarletteHTTPException

from clv_platform.serving.scoring import Live, RequestRuleError, score_posted

DEFAULT_MAX_BODY_BYTES = 1 << 20
DEFAULT_POLL_SECONDS = 2.0
_Text = Annotated[str, Field(min_length=1, max_length=200)]
_OptionalText = Annotated[str | None, Field(default=None, max_length=200)]


class Driver(BaseModel):
    feature: str
    contribution: float = Field(description="Signed contribution to the prediction, in the unit of the model's contributions.")


class CustomerScore(BaseModel):
    customer_id: str
    cutoff_date: str = Field(description="Features are as of this date (exclusive).")
    predicted_clv: float = Field(description="Predicted revenue over the horizon after the cutoff.")
    probability_alive: float
    value_tier: str
    segment: int | None = Field(description="RFM segment of the batch run; null for a customer it did not segment.")
    top_drivers: list[Driver]
    drivers: str | None
    model_name: str
    model_version: str = Field(description="The model version that produced this prediction.")
    model_rung: str
    arm: Literal["champion", "challenger"] = Field(
        default="champion", description="The rollout arm of the customer: which of the champion and the challenger scored."
    )
    snapshot_id: str


class PostedScore(CustomerScore):
    features: dict[str, float | int | str | None] = Field(description="The features the prediction was made from.")


class Line(BaseModel):
    model_config = ConfigDict(extra="forbid")

    invoice_no: _Text
    stock_code: _OptionalText = None
    description: _OptionalText = None
    quantity: int
    invoice_date: NaiveDatetime = Field(description="Shop-local time, no zone, as in raw.transactions.")
    unit_price: Annotated[float, Field(allow_inf_nan=False)]
    country: _OptionalText = None


class Event(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_id: _Text
    session_id: _OptionalText = None
    event_type: _Text = Field(description="page_view, search or add_to_cart.")
    event_timestamp: NaiveDatetime


class CustomerRecord(BaseModel):
    model_config = ConfigDict(extra="forbid")

    country: _Text
    acquisition_channel: _Text
    signup_date: NaiveDatetime


_EXAMPLE = {
    "customer_id": "12347",
    "lines": [
        {
            "invoice_no": "536365",
            "stock_code": "85123A",
            "description": "WHITE HANGING HEART T-LIGHT HOLDER",
            "quantity": 6,
            "invoice_date": "2025-03-01T08:26:00",
            "unit_price": 2.55,
            "country": "United Kingdom",
        },
        {
            "invoice_no": "536420",
            "stock_code": "22752",
            "description": "SET 7 BABUSHKA NESTING BOXES",
            "quantity": 2,
            "invoice_date": "2025-05-12T12:00:00",
            "unit_price": 7.65,
            "country": "United Kingdom",
        },
    ],
    "events": [{"event_id": "e1", "session_id": "s1", "event_type": "page_view", "event_timestamp": "2025-05-12T11:50:00"}],
}


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid", json_schema_extra={"examples": [_EXAMPLE]})

    customer_id: _Text
    lines: list[Line] = Field(min_length=1, max_length=5000)
    events: list[Event] = Field(default_factory=list, max_length=20000)
    customer: CustomerRecord | None = Field(
        default=None, description="The CRM record, for a customer the snapshot does not know (else the snapshot's is used)."
    )


class SnapshotInfo(BaseModel):
    snapshot_id: str
    cutoff_date: str
    rows: int
    model_version: str = Field(description="The version that made the snapshot's stored scores (GET /v1/customers).")
    model_rung: str


class RolloutInfo(BaseModel):
    mode: Literal["none", "shadow", "canary", "ab"] = Field(
        description="none: the champion scores everyone; shadow: the challenger scores beside it, logged only; "
        "canary / ab: the challenger scores its share of the customers."
    )
    share: float = Field(description="The challenger's share of customers (canary and ab; 0 otherwise).")
    salt: str = Field(description="Salt of the hash that assigns each customer id an arm.")
    champion_version: str
    challenger_version: str | None = Field(description="The loaded challenger, when one distinct from the champion is set.")
    challenger_rung: str | None


class ModelInfo(BaseModel):
    model_name: str
    model_version: str = Field(description="The live champion: the version POST /v1/score predicts with for its arm.")
    model_rung: str
    snapshot: SnapshotInfo
    rollout: RolloutInfo


class Health(BaseModel):
    status: Literal["ok"]
    model_version: str = Field(description="The live champion version.")
    challenger_version: str | None
    rollout: str = Field(description="The rollout mode.")
    share: float = Field(description="The challenger's share of customers.")
    snapshot_id: str
    cutoff_date: str


def _rollout_info(current) -> RolloutInfo:
    return RolloutInfo(
        mode=current.rollout.mode,
        share=current.rollout.share,
        salt=current.rollout.salt,
        champion_version=current.model_version,
        challenger_version=current.challenger_version,
        challenger_rung=current.challenger_rung or None,
    )


class Problem(BaseModel):
    detail: str | list


class BodyLimit:
    """ASGI middleware: a request body over ``max_bytes`` is answered 413, whether it declares its length or streams it.

    The body is read here first (it is small by then) and handed on whole. The rest of an oversized body is
    read and dropped, up to ``DRAIN_FACTOR`` times the limit, before the answer: a client still sending would
    otherwise meet a reset connection instead of the 413. A body declared larger than that is refused at once.
    """

    DRAIN_FACTOR = 16

    def __init__(self, app, max_bytes: int):
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope.get("headers") or {}).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes * self.DRAIN_FACTOR):
            return await self._refuse(send)
        chunks, received, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            received += len(message.get("body", b""))
            more = message.get("more_body", False)
            if received > self.max_bytes * self.DRAIN_FACTOR:
                break
            if received <= self.max_bytes:
                chunks.append(message.get("body", b""))
        if received > self.max_bytes:
            return await self._refuse(send)
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": b"".join(chunks), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)

    async def _refuse(self, send):
        body = json.dumps({"detail": f"request body larger than {self.max_bytes} bytes"}).encode()
        await send({"type": "http.response.start", "status": 413, "headers": [(b"content-type", b"application/json")]})
        await send({"type": "http.response.body", "body": body})


def create_app(
    state_dir: Path,
    model_name: str = "clv_model",
    poll_seconds: float = DEFAULT_POLL_SECONDS,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ingestion=None,
) -> FastAPI:
    """The API on ``state_dir``'s online snapshot; ``ingestion`` (an ``IngestionSpec``) sets the row rules' limits."""
    live = Live(state_dir, model_name, poll_seconds)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        live.start()
        yield
        live.stop()

    app = FastAPI(title="clv_platform scoring API", version="1", lifespan=lifespan)
    app.state.live = live
    unavailable = {503: {"model": Problem, "description": "No snapshot and model are loaded yet."}}

    def served():
        current = live.served
        if current is None:
            why = live.last_error or "no online snapshot loaded yet: materialize serving/online_features"
            raise HTTPException(503, why)
        return current

    @app.get("/v1/health", response_model=Health, responses=unavailable)
    async def health():
        current = served()
        return Health(
            status="ok",
            model_version=current.model_version,
            challenger_version=current.challenger_version,
            rollout=current.rollout.mode,
            share=current.rollout.share,
            snapshot_id=current.snapshot.id,
            cutoff_date=current.cutoff_date,
        )

    @app.get("/v1/model", response_model=ModelInfo, responses=unavailable)
    async def model():
        current = served()
        manifest = current.snapshot.manifest
        return ModelInfo(
            model_name=current.model_name,
            model_version=current.model_version,
            model_rung=current.model_rung,
            snapshot=SnapshotInfo(
                snapshot_id=manifest["snapshot_id"],
                cutoff_date=manifest["cutoff_date"],
                rows=manifest["rows"],
                model_version=str(manifest["model_version"]),
                model_rung=manifest.get("model_rung", ""),
            ),
            rollout=_rollout_info(current),
        )

    @app.get(
        "/v1/customers/{customer_id}",
        response_model=CustomerScore,
        responses={404: {"model": Problem, "description": "The snapshot has no such customer."}, **unavailable},
    )
    async def customer(customer_id: Annotated[str, PathParam(min_length=1, max_length=200)]):
        answer = served().by_customer.get(customer_id)
        if answer is None:
            raise HTTPException(404, f"customer {customer_id!r} is not in the online snapshot")
        return answer

    @app.post(
        "/v1/score",
        response_model=PostedScore,
        responses={413: {"model": Problem, "description": "Body too large."}, **unavailable},
    )
    def score(request: ScoreRequest):
        current = served()
        now = datetime.now(UTC).replace(tzinfo=None)
        try:
            return score_posted(
                current,
                request.customer_id,
                [line.model_dump() for line in request.lines],
                [event.model_dump() for event in request.events],
                request.customer.model_dump() if request.customer else None,
                now,
                ingestion,
            )
        except RequestRuleError as error:
            return JSONResponse(
                status_code=422, content={"detail": [{"loc": error.loc, "msg": error.message, "type": error.rule}]}
            )

    @app.exception_handler(StarletteHTTPException)
    async def malformed_body(request, error: StarletteHTTPException):
        # FastAPI answers 400 for a body that is not text (bytes invalid in UTF-8): a malformed body, like bad JSON.
        if error.status_code == 400:
            detail = [{"loc": ["body"], "msg": f"malformed body: {error.detail}", "type": "body_unparseable"}]
            return JSONResponse(status_code=422, content={"detail": detail})
        return await http_exception_handler(request, error)

    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    return app
