"""A small Flask reproduction of the Oakestra system manager's addon-facing API.

It follows the recorded exchanges (``data/recorded/*.jsonl``): same paths, status codes and body
shapes, double-encoded JSON and ``{"$oid"}`` ids (unless ``fixed_encoding``), ``null`` from
``GET /api/application/<id>``, always-200 deploy answers, the three error shapes, 500/501 on
second deletes. Version quirks: v0.4.400 reports ``cpu``/``memory`` and no instance status before
the first report, later versions ``cpu_percent``/``memory_percent``, ``CLUSTER_SCHEDULED``
instances and the candidate fields of clusters. As the real v0.4.400 does (reference Appendix C
item 2), its ``GET /api/services/<appId>`` lists the services of every application.

Deployed instances really run as local processes (see :mod:`.contract_state`): ``env://<dir>``
images with that environment's interpreter, and, for services with a loopback round-robin IP
(``FLOPS_OAKESTRA_RR_SUBNET=127.30.0.0/16``), listening on that IP.

Test hooks on :class:`OakestraState`: ``add_cluster``, ``expire_tokens``, ``inject_failure``
(transient 5xx), ``force_status`` (e.g. a FAILED instance whatever its process does),
``jobs_named``, ``requests`` (every request received, with its body), ``instance_pids``.
"""

from __future__ import annotations

import http
import json
import threading
import time
from pathlib import Path
from typing import Any, TypeGuard

import jsonschema
from flask import Flask, Response, jsonify, request
from werkzeug.serving import make_server

from tests.oakestra.contract_state import OakestraState, RecordedRequest, new_id

__all__ = ["ContractServer", "OakestraState", "RecordedRequest", "create_app"]

def _reason(code: int) -> str:
    return http.HTTPStatus(code).phrase


def create_app(state: OakestraState) -> Flask:
    app = Flask("oakestra-contract")

    # ------------------------------------------------------------------ encoding helpers

    def oid(value: str) -> Any:
        return value if state.fixed_encoding else {"$oid": value}

    def rendered(doc: dict[str, Any]) -> dict[str, Any]:
        return {**doc, "_id": oid(doc["_id"])}

    def dbl(value: Any) -> Response:
        if state.fixed_encoding:
            return jsonify(value)
        return Response(json.dumps(json.dumps(value)) + "\n", 200, mimetype="application/json")

    def html(value: Any) -> Response:
        return Response(json.dumps(value), 200, content_type="text/html; charset=utf-8")

    def smorest(code: int) -> tuple[Response, int]:
        return jsonify({"code": code, "status": _reason(code)}), code

    def message(text: str, code: int) -> tuple[Response, int]:
        return jsonify({"message": text}), code

    def msg(text: str, code: int) -> tuple[Response, int]:
        return jsonify({"msg": text}), code

    # ------------------------------------------------------------------ auth

    def bearer() -> tuple[str | None, tuple[Response, int] | None]:
        header = request.headers.get("Authorization")
        if header is None:
            return None, msg("Missing Authorization Header", 401)
        if not header.startswith("Bearer "):
            return None, msg("Missing 'Bearer' type in 'Authorization' header. Expected "
                             "'Authorization: Bearer <JWT>'", 401)
        return header.removeprefix("Bearer "), None

    def jwt_required() -> tuple[str | None, tuple[Response, int] | None]:
        token, error = bearer()
        if error is not None:
            return None, error
        info = state.tokens.get(token or "")
        if info is None:
            return None, msg("Invalid header string: 'utf-8' codec can't decode byte", 422)
        if info["type"] != "access":
            return None, msg("Only non-refresh tokens are allowed", 422)
        if info["exp"] < time.time():
            return None, msg("Token has expired", 401)
        return str(info["user"]), None

    def jwt_auth_required() -> tuple[str | None, tuple[Response, int] | None]:
        user, error = jwt_required()
        if error is not None:
            return None, message("Missing authentication token", 401)
        return user, None

    # ------------------------------------------------------------------ hooks

    @app.before_request
    def record_and_fail() -> Any:
        body = request.get_data(cache=True, as_text=True)
        with state.lock:
            state.requests.append(RecordedRequest(request.method, request.path, body,
                                                  request.headers.get("Authorization")))
            for fault in state.faults:
                if fault.remaining > 0 and request.path.startswith(fault.path_prefix) and (
                        fault.method in (None, request.method)):
                    fault.remaining -= 1
                    return Response(f"<html><body>{fault.status} {_reason(fault.status)}"
                                    "</body></html>", fault.status, mimetype="text/html")
        return None

    # ------------------------------------------------------------------ authentication

    @app.post("/api/auth/login")
    def login() -> Any:
        body = request.get_json(silent=True)
        if not isinstance(body, dict):
            return smorest(403)
        user = state.users.get(str(body.get("username")))
        if user is None or user["password"] != body.get("password"):
            return smorest(401)
        if body.get("organization_name", "root") != "root":
            return smorest(404)
        with state.lock:
            state.logins += 1
            name = str(body["username"])
            return jsonify({"token": state.issue(name, "access"),
                            "refresh_token": state.issue(name, "refresh")})

    @app.post("/api/auth/refresh")
    def refresh() -> Any:
        token, error = bearer()
        if error is not None:
            return error
        info = state.tokens.get(token or "")
        if info is None:
            return msg("Invalid header string", 422)
        if info["type"] != "refresh":
            return msg("Only refresh tokens are allowed", 422)
        with state.lock:
            state.refreshes += 1
            return jsonify({"token": state.issue(info["user"], "access")})

    @app.get("/api/permission/<username>")
    def permission(username: str) -> Any:
        user, error = jwt_auth_required()
        if error is not None:
            return error
        if user != username:
            return message("You have not enough permissions!", 403)
        return jsonify({"roles": state.users[username]["roles"]})

    @app.get("/api/user/<username>")
    def get_user(username: str) -> Any:
        user, error = jwt_auth_required()
        if error is not None:
            return error
        if user != username:
            return message("You have not enough permissions!", 403)
        info = state.users[username]
        return html({"name": username, "email": "", "password": "pbkdf2:sha256:<hash>",
                     "created_at": "22/11/2026 06:06", "_id": {"$oid": info["oid"]},
                     "roles": info["roles"]})

    def is_admin(user: str) -> bool:
        return "Admin" in state.users[user]["roles"]

    # ------------------------------------------------------------------ clusters

    def cluster_doc(cluster: dict[str, Any]) -> dict[str, Any]:
        if state.version == "v0.4.400":
            return {"_id": cluster["_id"], "active": cluster["active"], "active_nodes": 1,
                    "cluster_name": cluster["name"], "cluster_location": cluster["location"],
                    "ip": "127.0.0.1", "port": "10100", "aggregated_cpu_percent": 12.5,
                    "total_cpu_cores": 8, "memory_in_mb": 16000, "total_gpu_cores": 0,
                    "total_gpu_percent": 0, "virtualization": ["container"],
                    "supported_addons": [], "aggregation_per_architecture": {},
                    "last_modified_timestamp": time.time()}
        return {"_id": cluster["_id"], "active": cluster["active"], "active_nodes": 1,
                "candidate_name": cluster["name"], "candidate_location": cluster["location"],
                "ip": "127.0.0.1", "port": "10100", "cpu_percent": 12.5, "vcpus": 8,
                "memory": 16000, "vgpus": 0, "virtualization": ["container"],
                "supported_addons": [], "csi_drivers": [], "cluster_name": cluster["name"],
                "cluster_location": cluster["location"], "aggregated_cpu_percent": 12.5,
                "memory_in_mb": 16000, "total_cpu_cores": 8, "total_gpu_cores": 0}

    @app.get("/api/clusters/")
    def clusters() -> Any:
        return html([cluster_doc(c) for c in state.clusters])

    @app.get("/api/clusters/active")
    def active_clusters() -> Any:
        return html([cluster_doc(c) for c in state.clusters if c["active"]])

    # ------------------------------------------------------------------ applications

    def apps_of(user: str) -> list[dict[str, Any]]:
        return [rendered(a) for a in state.apps.values() if a["userId"] == user]

    def create_job(app_doc: dict[str, Any], service: dict[str, Any]) -> str:
        job_id = new_id()
        job = dict(service)
        if job.get("virtualization") == "container":
            job["virtualization"] = "docker"
        job.update({"microserviceID": job_id, "job_name": ".".join([
            app_doc["application_name"], app_doc["application_namespace"],
            service["microservice_name"], service["microservice_namespace"]]),
            "applicationID": app_doc["applicationID"], "app_name": app_doc["application_name"],
            "app_ns": app_doc["application_namespace"],
            "service_name": service["microservice_name"],
            "service_ns": service["microservice_namespace"], "image": service["code"],
            "next_instance_progressive_number": 0, "instance_list": [], "_id": job_id})
        addresses = service.get("addresses")
        if isinstance(addresses, dict):
            job["RR_ip"] = addresses.get("rr_ip")
            job["RR_ip_v6"] = addresses.get("rr_ip_v6")
        state.jobs[job_id] = job
        app_doc["microservices"].append(job_id)
        return job_id

    def rr_ip_taken(service: dict[str, Any]) -> bool:
        wanted = (service.get("addresses") or {}).get("rr_ip")
        return wanted is not None and any(j.get("RR_ip") == wanted for j in state.jobs.values())

    def valid(body: Any) -> TypeGuard[dict[str, Any]]:
        """Whether ``body`` is an SLA the schema accepts (a JSON object)."""
        try:
            jsonschema.validate(body, state.schema)
        except jsonschema.ValidationError:
            return False
        return True

    @app.post("/api/application/")
    def create_application() -> Any:
        user, error = jwt_required()
        if error is not None:
            return error
        body = request.get_json(silent=True)
        if not valid(body):
            return smorest(422)
        if body.get("sla_version") != "v2.0":
            return smorest(500)
        with state.lock:
            for application in body["applications"]:
                name = application["application_name"]
                namespace = application["application_namespace"]
                if any(a["userId"] == user and a["application_name"] == name
                       and a["application_namespace"] == namespace
                       for a in state.apps.values()):
                    return smorest(409)
                app_id = new_id()
                doc = {"applicationID": app_id, "application_name": name,
                       "application_namespace": namespace,
                       "application_desc": application.get("application_desc", ""),
                       "microservices": [], "userId": user, "_id": app_id}
                state.apps[app_id] = doc
                for service in application["microservices"]:
                    if not rr_ip_taken(service):
                        create_job(doc, service)
            return dbl(apps_of(str(user)))

    @app.get("/api/applications/")
    def list_applications() -> Any:
        user, error = jwt_required()
        if error is not None:
            return error
        if not is_admin(str(user)):
            return message("You have not enough permissions!", 403)
        return dbl([rendered(a) for a in state.apps.values()])

    @app.get("/api/applications/<user_oid>")
    def list_user_applications(user_oid: str) -> Any:
        user, error = jwt_required()
        if error is not None:
            return error
        if state.users[str(user)]["oid"] != user_oid:
            return smorest(401)
        return dbl(apps_of(str(user)))

    def owned_app(user: str, app_id: str) -> dict[str, Any] | None:
        doc = state.apps.get(app_id)
        return doc if doc is not None and doc["userId"] == user else None

    @app.get("/api/application/<app_id>")
    def get_application(app_id: str) -> Any:
        user, error = jwt_required()
        if error is not None:
            return error
        doc = owned_app(str(user), app_id)
        if doc is None:
            return smorest(404)
        if state.fixed_encoding:
            return jsonify(rendered(doc))
        return Response("null\n", 200, mimetype="application/json")

    @app.put("/api/application/<app_id>")
    def update_application(app_id: str) -> Any:
        user, error = jwt_required()
        if error is not None:
            return error
        body = request.get_json(silent=True) or {}
        doc = state.apps.get(app_id)
        if doc is not None:
            for key in ("application_name", "application_namespace", "application_desc",
                        "microservices"):
                doc[key] = body.get(key)
            doc["userId"] = user
        return jsonify({"message": "Application is updated"})

    def remove_job(job_id: str) -> None:
        job = state.jobs.pop(job_id)
        for instance in job.get("instance_list", []):
            state.stop_instance(job_id, instance["instance_number"])
        app_doc = state.apps.get(job["applicationID"])
        if app_doc is not None and job_id in (app_doc.get("microservices") or []):
            app_doc["microservices"].remove(job_id)

    @app.delete("/api/application/<app_id>")
    def delete_application(app_id: str) -> Any:
        user, error = jwt_required()
        if error is not None:
            return error
        with state.lock:
            doc = owned_app(str(user), app_id)
            if doc is None:
                return smorest(501)
            for job_id in list(doc.get("microservices") or []):
                if job_id in state.jobs:
                    remove_job(job_id)
            del state.apps[app_id]
        return jsonify({"message": "Application Deleted"})

    # ------------------------------------------------------------------ services

    def owned_job(user: str, job_id: str) -> dict[str, Any] | None:
        job = state.jobs.get(job_id)
        if job is None or owned_app(user, job["applicationID"]) is None:
            return None
        return job

    @app.post("/api/service/")
    def create_service() -> Any:
        user, error = jwt_auth_required()
        if error is not None:
            return error
        body = request.get_json(silent=True)
        if body is None:
            return smorest(404)
        if not valid(body) or body.get("sla_version") != "v2.0" or not body["applications"]:
            return smorest(400)
        application = body["applications"][0]
        with state.lock:
            doc = owned_app(str(user), str(application.get("applicationID", "")))
            if doc is None:
                return smorest(400)
            for service in application["microservices"]:
                if service.get("virtualization") == "unikernel" and "arch" not in service:
                    return smorest(400)
            deployed, failed, job_id = [], [], ""
            for service in application["microservices"]:
                collides = rr_ip_taken(service)
                job_id = create_job(doc, service)
                if collides:  # the network plugin refuses; Oakestra drops the service again
                    remove_job(job_id)
                    failed.append({"service_name": service["microservice_name"], "status": 500,
                                   "message": "network plugin: address already in use"})
                else:
                    deployed.append({"service_name": service["microservice_name"],
                                     "status": 200})
        return jsonify({"job_id": job_id, "deployed_services": deployed,
                        "failed_services": failed})

    @app.get("/api/service/<job_id>")
    def get_service(job_id: str) -> Any:
        user, error = jwt_auth_required()
        if error is not None:
            return error
        with state.lock:
            job = owned_job(str(user), job_id)
            if job is None:
                return smorest(404)
            state.refresh(job)
            return dbl(rendered(job))

    @app.get("/api/services/<app_id>")
    def list_services(app_id: str) -> Any:
        user, error = jwt_auth_required()
        if error is not None:
            return error
        with state.lock:
            doc = owned_app(str(user), app_id)
            if doc is None:
                return smorest(404)
            jobs = [state.jobs[j] for j in doc.get("microservices") or [] if j in state.jobs]
            if state.version == "v0.4.400":  # Appendix C item 2: every application's jobs
                jobs = list(state.jobs.values())
            for job in jobs:
                state.refresh(job)
            return dbl([rendered(j) for j in jobs])

    @app.get("/api/services/")
    def list_all_services() -> Any:
        user, error = jwt_auth_required()
        if error is not None:
            return error
        if not is_admin(str(user)):
            return message("You have not enough permissions!", 403)
        with state.lock:
            return dbl([rendered(j) for j in state.jobs.values()])

    @app.put("/api/service/<job_id>")
    def update_service(job_id: str) -> Any:
        _, error = jwt_auth_required()
        return error if error is not None else smorest(501)

    @app.delete("/api/service/<job_id>")
    def delete_service(job_id: str) -> Any:
        user, error = jwt_auth_required()
        if error is not None:
            return error
        with state.lock:
            if owned_job(str(user), job_id) is None:
                return smorest(500)
            remove_job(job_id)
        return jsonify({"message": "Job deleted"})

    def schedule(job: dict[str, Any]) -> None:
        job["status"] = "REQUESTED"
        job["status_detail"] = "Waiting for scheduling decision"
        active = [c for c in state.clusters if c["active"]]
        direct = [c.get("cluster") for c in job.get("constraints") or []
                  if c.get("type") == "direct"]
        if direct:
            named = [c for c in state.clusters if c["name"] == direct[0]]
            if not named:
                job["status"] = "TargetClusterNotFound"
                return
            if not named[0]["active"]:
                job["status"] = "TargetClusterNotActive"
                return
            active = named
        if not active:
            job["status"] = ("NoActiveClusterWithCapacity" if state.version == "v0.4.400"
                             else "TargetClusterNotActive")
            return
        number = job["next_instance_progressive_number"]
        job["next_instance_progressive_number"] = number + 1
        instance: dict[str, Any] = {"instance_number": number, "cluster_id": active[0]["_id"],
                                    "cluster_location": active[0]["location"]}
        if state.version != "v0.4.400":
            instance["status"] = "CLUSTER_SCHEDULED"
        job["instance_list"].append(instance)
        job["status"] = "CLUSTER_SCHEDULED"
        state.start_instance(job, instance)

    @app.post("/api/service/<job_id>/instance")
    def deploy_instance(job_id: str) -> Any:
        user, error = jwt_auth_required()
        if error is not None:
            return error
        with state.lock:
            job = owned_job(str(user), job_id)
            if job is not None:
                schedule(job)
        return jsonify({"message": "ok"})

    @app.delete("/api/service/<job_id>/instance/<int:number>")
    def undeploy_instance(job_id: str, number: int) -> Any:
        user, error = jwt_auth_required()
        if error is not None:
            return error
        with state.lock:
            job = owned_job(str(user), job_id)
            if job is not None:
                state.stop_instance(job_id, number)
                job["instance_list"] = [i for i in job["instance_list"]
                                        if i["instance_number"] != number]
        return jsonify({"message": "ok"})

    return app


class ContractServer:
    """The fake system manager on a free loopback port, served from a thread."""

    def __init__(self, workdir: Path, *, port: int, **options: Any) -> None:
        self.state = OakestraState(workdir, **options)
        self.port = port
        self._server = make_server("127.0.0.1", port, create_app(self.state), threaded=True)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def uri(self) -> str:
        return f"oakestra://127.0.0.1:{self.port}"

    def start(self) -> ContractServer:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._thread.join(5)
        self.state.close()
