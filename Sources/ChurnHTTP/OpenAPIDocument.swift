/// The OpenAPI 3.1 document of the coordinator's HTTP API, served at `/openapi.json`: the
/// contract the handlers are tested against (every route in `APIRoute.table` is described, and
/// every response of the API test is validated against its schema).
enum OpenAPIDocument {
    static let json = #"""
    {
     "openapi": "3.1.0",
     "info": {
      "title": "ChurnGrid HTTP API",
      "version": "1.0.0",
      "description": "Live churn scores with reasons, rescoring jobs, events, campaign runs and outcomes, the cluster, tokens. JSON keys are snake_case; errors are RFC 9457 problem documents (application/problem+json) with a stable `type`. Authenticate with `Authorization: Bearer TOKEN` (`churngrid tokens create`) or the dashboard's session cookie (reads only: a request that changes something needs the bearer token, so a cross-site form cannot act with the cookie). Roles: reader (reads), operator (also jobs, events, campaign runs and outcomes), admin (also nodes and tokens). Bodies are limited to 1 MiB (outcomes files to 256 MiB)."
     },
     "servers": [
      {
       "url": "/"
      }
     ],
     "components": {
      "securitySchemes": {
       "bearer": {
        "type": "http",
        "scheme": "bearer"
       },
       "session": {
        "type": "apiKey",
        "in": "cookie",
        "name": "churngrid_session"
       }
      },
      "schemas": {
       "Problem": {
        "type": "object",
        "description": "RFC 9457 problem details. `type` is stable per kind of error.",
        "required": [
         "type",
         "title",
         "status",
         "detail",
         "instance"
        ],
        "additionalProperties": false,
        "properties": {
         "type": {
          "type": "string",
          "enum": [
           "/problems/unauthorized",
           "/problems/forbidden",
           "/problems/not-found",
           "/problems/method-not-allowed",
           "/problems/unknown-subscriber",
           "/problems/unknown-job",
           "/problems/unknown-node",
           "/problems/unknown-token",
           "/problems/unknown-run",
           "/problems/unknown-model",
           "/problems/unknown-subscribers",
           "/problems/invalid-parameter",
           "/problems/invalid-body",
           "/problems/body-too-large",
           "/problems/too-many-ids",
           "/problems/too-many-events",
           "/problems/unsupported-media-type",
           "/problems/conflict",
           "/problems/unavailable",
           "/problems/not-leading",
           "/problems/internal-error"
          ]
         },
         "title": {
          "type": "string"
         },
         "status": {
          "type": "integer"
         },
         "detail": {
          "type": "string"
         },
         "instance": {
          "type": "string"
         },
         "lines": {
          "type": "array",
          "items": {
           "type": "integer",
           "minimum": 1
          },
          "description": "The offending lines of an uploaded file (1-based; the header is line 1): a malformed outcome, unknown subscribers."
         },
         "field": {
          "type": "string",
          "description": "The offending parameter or body field (`subscriber_ids[3]`)."
         }
        }
       },
       "Reason": {
        "type": "object",
        "required": [
         "feature",
         "contribution"
        ],
        "additionalProperties": false,
        "properties": {
         "feature": {
          "type": "string"
         },
         "contribution": {
          "type": "number"
         }
        }
       },
       "Score": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "subscriber_id",
         "probability",
         "risk_band",
         "reasons",
         "explain",
         "model_version",
         "shard",
         "node",
         "epoch"
        ],
        "properties": {
         "subscriber_id": {
          "type": "integer",
          "format": "int64",
          "minimum": 0
         },
         "probability": {
          "type": "number",
          "minimum": 0,
          "maximum": 1
         },
         "risk_band": {
          "type": "string",
          "enum": [
           "low",
           "medium",
           "high",
           "very_high"
          ]
         },
         "reasons": {
          "type": "array",
          "maxItems": 3,
          "items": {
           "$ref": "#/components/schemas/Reason"
          },
          "description": "Top reasons (positive contributions to the margin), strongest first."
         },
         "explain": {
          "type": "string",
          "enum": [
           "approx",
           "exact"
          ]
         },
         "model_version": {
          "type": "string"
         },
         "shard": {
          "type": "integer"
         },
         "node": {
          "type": "string"
         },
         "epoch": {
          "type": "integer"
         },
         "active_models": {
          "type": "array",
          "description": "With models=all: each model active beside the served one whose segment holds the subscriber.",
          "items": {
           "$ref": "#/components/schemas/ActiveModelScore"
          }
         }
        }
       },
       "BatchRequest": {
        "type": "object",
        "required": [
         "subscriber_ids"
        ],
        "additionalProperties": false,
        "properties": {
         "subscriber_ids": {
          "type": "array",
          "maxItems": 10000,
          "items": {
           "type": "integer",
           "format": "int64",
           "minimum": 0
          }
         },
         "explain": {
          "type": "string",
          "enum": [
           "approx",
           "exact"
          ],
          "default": "approx"
         }
        }
       },
       "BatchScores": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "scores",
         "not_found",
         "unavailable",
         "epoch"
        ],
        "properties": {
         "scores": {
          "type": "array",
          "items": {
           "$ref": "#/components/schemas/Score"
          }
         },
         "not_found": {
          "type": "array",
          "items": {
           "type": "integer",
           "format": "int64",
           "minimum": 0
          }
         },
         "unavailable": {
          "type": "array",
          "items": {
           "type": "object",
           "required": [
            "subscriber_id",
            "reason"
           ],
           "additionalProperties": false,
           "properties": {
            "subscriber_id": {
             "type": "integer",
             "format": "int64",
             "minimum": 0
            },
            "reason": {
             "type": "string"
            }
           }
          }
         },
         "epoch": {
          "type": "integer"
         }
        }
       },
       "Job": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "id",
         "state",
         "model_version",
         "shards_done",
         "shard_count",
         "subscribers",
         "seconds",
         "subscribers_per_second",
         "retries",
         "stragglers",
         "error"
        ],
        "properties": {
         "id": {
          "type": "integer",
          "format": "int64",
          "minimum": 0
         },
         "state": {
          "type": "string",
          "enum": [
           "running",
           "completed",
           "failed"
          ]
         },
         "model_version": {
          "type": "string"
         },
         "shards_done": {
          "type": "integer"
         },
         "shard_count": {
          "type": "integer"
         },
         "subscribers": {
          "type": "integer"
         },
         "seconds": {
          "type": "number"
         },
         "subscribers_per_second": {
          "type": "number"
         },
         "retries": {
          "type": "integer"
         },
         "stragglers": {
          "type": "integer"
         },
         "error": {
          "type": [
           "string",
           "null"
          ]
         },
         "published": {
          "type": "boolean"
         }
        }
       },
       "JobRecord": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "id",
         "state",
         "model_version",
         "shards_done",
         "shard_count",
         "subscribers",
         "seconds",
         "started_at",
         "finished_at",
         "error",
         "published"
        ],
        "properties": {
         "id": {
          "type": "integer",
          "format": "int64",
          "minimum": 0
         },
         "state": {
          "type": "string",
          "enum": [
           "running",
           "completed",
           "failed"
          ]
         },
         "model_version": {
          "type": "string"
         },
         "shards_done": {
          "type": "integer"
         },
         "shard_count": {
          "type": "integer"
         },
         "subscribers": {
          "type": "integer"
         },
         "seconds": {
          "type": "number"
         },
         "started_at": {
          "type": "string",
          "format": "date-time"
         },
         "finished_at": {
          "type": [
           "string",
           "null"
          ],
          "format": "date-time"
         },
         "error": {
          "type": [
           "string",
           "null"
          ]
         },
         "published": {
          "type": "boolean"
         }
        }
       },
       "JobList": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "jobs",
         "published_job_id"
        ],
        "properties": {
         "jobs": {
          "type": "array",
          "items": {
           "$ref": "#/components/schemas/JobRecord"
          }
         },
         "published_job_id": {
          "type": [
           "integer",
           "null"
          ]
         }
        }
       },
       "JobDrift": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "job_id",
         "model_version",
         "reference_job_id",
         "features"
        ],
        "properties": {
         "job_id": {
          "type": "integer",
          "format": "int64",
          "minimum": 0
         },
         "model_version": {
          "type": "string"
         },
         "reference_job_id": {
          "type": "integer",
          "format": "int64",
          "minimum": 0,
          "description": "The job whose population is the reference (this job when it took the reference: every PSI 0); 0 when the reference is the file given to `churngrid models add --reference`."
         },
         "features": {
          "type": "array",
          "description": "Every feature the model reads and the score (named \"(score)\"), highest PSI first.",
          "items": {
           "type": "object",
           "additionalProperties": false,
           "required": [
            "feature",
            "psi",
            "level"
           ],
           "properties": {
            "feature": {
             "type": "string"
            },
            "psi": {
             "type": "number",
             "minimum": 0
            },
            "level": {
             "type": "string",
             "enum": [
              "stable",
              "watch",
              "act"
             ]
            }
           }
          }
         }
        }
       },
       "JobSummary": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "job_id",
         "subscribers",
         "mean_probability",
         "deciles",
         "histogram",
         "per_band",
         "per_region",
         "per_region_band",
         "top_risk",
         "model_version",
         "finished_at",
         "models"
        ],
        "properties": {
         "job_id": {
          "type": "integer",
          "format": "int64",
          "minimum": 0
         },
         "subscribers": {
          "type": "integer"
         },
         "mean_probability": {
          "type": "number"
         },
         "deciles": {
          "type": "array",
          "items": {
           "type": "number"
          },
          "maxItems": 9,
          "description": "10th … 90th percentiles of the probability."
         },
         "histogram": {
          "type": "array",
          "items": {
           "type": "integer"
          },
          "minItems": 20,
          "maxItems": 20,
          "description": "Subscribers per probability bin of width 0.05."
         },
         "per_band": {
          "type": "object",
          "additionalProperties": {
           "type": "integer"
          }
         },
         "per_region": {
          "type": "object",
          "additionalProperties": {
           "type": "integer"
          },
          "description": "Subscribers per home region code (\"unknown\" for none)."
         },
         "per_region_band": {
          "type": "object",
          "description": "Subscribers per home region code and risk band.",
          "additionalProperties": {
           "type": "object",
           "additionalProperties": false,
           "required": [
            "low",
            "medium",
            "high",
            "very_high"
           ],
           "properties": {
            "low": {
             "type": "integer"
            },
            "medium": {
             "type": "integer"
            },
            "high": {
             "type": "integer"
            },
            "very_high": {
             "type": "integer"
            }
           }
          }
         },
         "top_risk": {
          "type": "array",
          "maxItems": 10,
          "items": {
           "type": "object",
           "additionalProperties": false,
           "required": [
            "subscriber_id",
            "probability",
            "risk_band",
            "region",
            "reasons"
           ],
           "properties": {
            "subscriber_id": {
             "type": "integer",
             "format": "int64",
             "minimum": 0
            },
            "probability": {
             "type": "number"
            },
            "risk_band": {
             "type": "string",
             "enum": [
              "low",
              "medium",
              "high",
              "very_high"
             ]
            },
            "region": {
             "type": [
              "integer",
              "null"
             ]
            },
            "reasons": {
             "type": "array",
             "items": {
              "$ref": "#/components/schemas/Reason"
             }
            }
           }
          }
         },
         "model_version": {
          "type": "string"
         },
         "finished_at": {
          "type": [
           "string",
           "null"
          ]
         },
         "models": {
          "type": "array",
          "description": "Every model the job scored, the served one first: each with its own figures over the subscribers it scored (an active model's segment). Jobs published before these were kept have the count only.",
          "items": {
           "type": "object",
           "additionalProperties": false,
           "required": [
            "model_name",
            "model_version",
            "role",
            "segment"
           ],
           "properties": {
            "model_name": {
             "type": "string"
            },
            "model_version": {
             "type": "string"
            },
            "role": {
             "type": "string",
             "enum": [
              "served",
              "active"
             ]
            },
            "segment": {
             "type": "string",
             "description": "The segment scored (canonical text); empty: every subscriber."
            },
            "subscribers": {
             "type": "integer"
            },
            "mean_probability": {
             "type": "number"
            },
            "deciles": {
             "type": "array",
             "items": {
              "type": "number"
             },
             "maxItems": 9
            },
            "histogram": {
             "type": "array",
             "items": {
              "type": "integer"
             },
             "minItems": 20,
             "maxItems": 20
            },
            "per_band": {
             "type": "object",
             "additionalProperties": {
              "type": "integer"
             }
            }
           }
          }
         }
        }
       },
       "ClusterNode": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "name",
         "endpoint",
         "state",
         "shards",
         "ready_shards",
         "standby_shards",
         "subscribers",
         "profile_bytes",
         "standby_bytes",
         "resident_bytes",
         "max_memory_bytes",
         "cores",
         "model_version"
        ],
        "properties": {
         "name": {
          "type": "string"
         },
         "endpoint": {
          "type": "string"
         },
         "state": {
          "type": "string",
          "enum": [
           "active",
           "draining"
          ]
         },
         "shards": {
          "type": "integer"
         },
         "ready_shards": {
          "type": "integer"
         },
         "standby_shards": {
          "type": "integer"
         },
         "subscribers": {
          "type": "integer"
         },
         "profile_bytes": {
          "type": "integer"
         },
         "standby_bytes": {
          "type": "integer"
         },
         "resident_bytes": {
          "type": "integer"
         },
         "max_memory_bytes": {
          "type": "integer",
          "description": "0: no limit."
         },
         "cores": {
          "type": "integer"
         },
         "model_version": {
          "type": "string"
         }
        }
       },
       "Cluster": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "coordinator",
         "endpoint",
         "term",
         "epoch",
         "shard_count",
         "ready_shards",
         "unassigned_shards",
         "moving_shards",
         "model_version",
         "nodes",
         "silent_nodes",
         "job",
         "placement",
         "database"
        ],
        "properties": {
         "coordinator": {
          "type": "string"
         },
         "endpoint": {
          "type": "string"
         },
         "term": {
          "type": "integer",
          "description": "The coordinator lease's term."
         },
         "epoch": {
          "type": "integer",
          "description": "The shard map's epoch."
         },
         "shard_count": {
          "type": "integer"
         },
         "ready_shards": {
          "type": "integer"
         },
         "unassigned_shards": {
          "type": "integer"
         },
         "moving_shards": {
          "type": "integer"
         },
         "model_version": {
          "type": "string"
         },
         "nodes": {
          "type": "array",
          "items": {
           "$ref": "#/components/schemas/ClusterNode"
          }
         },
         "silent_nodes": {
          "type": "array",
          "items": {
           "type": "string"
          }
         },
         "job": {
          "oneOf": [
           {
            "$ref": "#/components/schemas/Job"
           },
           {
            "type": "null"
           }
          ]
         },
         "placement": {
          "description": "Placing shards failed and is tried again (null: the last placement succeeded).",
          "oneOf": [
           {
            "$ref": "#/components/schemas/PlacementPending"
           },
           {
            "type": "null"
           }
          ]
         },
         "database": {
          "description": "Whether the coordinator's PostgreSQL answers, from the outcome of its calls (null: a coordinator that does not say).",
          "oneOf": [
           {
            "$ref": "#/components/schemas/DatabaseStatus"
           },
           {
            "type": "null"
           }
          ]
         }
        }
       },
       "DatabaseStatus": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "reachable",
         "last_answer_seconds_ago",
         "unreachable_for_seconds",
         "failures",
         "last_error",
         "lease_valid"
        ],
        "properties": {
         "reachable": {
          "type": "boolean",
          "description": "False from the first call that could not reach the server until one is answered again."
         },
         "last_answer_seconds_ago": {
          "description": "Seconds since the server last answered a call (null: none yet).",
          "type": [
           "number",
           "null"
          ]
         },
         "unreachable_for_seconds": {
          "description": "Seconds since the first failed call of the current outage (null: reachable).",
          "type": [
           "number",
           "null"
          ]
         },
         "failures": {
          "type": "integer",
          "description": "Failed calls in the current outage."
         },
         "last_error": {
          "description": "Why the last call failed (the server named, never a password).",
          "type": [
           "string",
           "null"
          ]
         },
         "lease_valid": {
          "type": "boolean",
          "description": "Whether the coordinator lease is valid; it lapses while PostgreSQL is away, and the coordinator then serves reads but gives no orders."
         }
        }
       },
       "PlacementPending": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "failures",
         "last_error",
         "retry_in_seconds"
        ],
        "properties": {
         "failures": {
          "type": "integer",
          "description": "Failed attempts since the last success."
         },
         "last_error": {
          "type": "string"
         },
         "retry_in_seconds": {
          "description": "Seconds until the next try (null: it is running now).",
          "type": [
           "number",
           "null"
          ]
         }
        }
       },
       "Drained": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "node",
         "shards_moved"
        ],
        "properties": {
         "node": {
          "type": "string"
         },
         "shards_moved": {
          "type": "integer"
         }
        }
       },
       "Token": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "name",
         "role",
         "created_at",
         "created_by",
         "revoked_at"
        ],
        "properties": {
         "name": {
          "type": "string"
         },
         "role": {
          "type": "string",
          "enum": [
           "reader",
           "operator",
           "admin"
          ]
         },
         "created_at": {
          "type": "string"
         },
         "created_by": {
          "type": "string"
         },
         "revoked_at": {
          "type": [
           "string",
           "null"
          ]
         }
        }
       },
       "TokenList": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "tokens"
        ],
        "properties": {
         "tokens": {
          "type": "array",
          "items": {
           "$ref": "#/components/schemas/Token"
          }
         }
        }
       },
       "TokenRequest": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "name",
         "role"
        ],
        "properties": {
         "name": {
          "type": "string",
          "pattern": "^[A-Za-z0-9._@-]{1,64}$"
         },
         "role": {
          "type": "string",
          "enum": [
           "reader",
           "operator",
           "admin"
          ]
         }
        }
       },
       "TokenCreated": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "name",
         "role",
         "token"
        ],
        "properties": {
         "name": {
          "type": "string"
         },
         "role": {
          "type": "string"
         },
         "token": {
          "type": "string",
          "description": "Shown only in this answer; only its SHA-256 is stored."
         }
        }
       },
       "ModelList": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "active",
         "challengers",
         "models"
        ],
        "properties": {
         "active": {
          "type": "array",
          "description": "The models active beside the served one, scored in every job (docs/models.md, Several models).",
          "items": {
           "$ref": "#/components/schemas/ActiveModel"
          }
         },
         "challengers": {
          "type": "array",
          "description": "Every challenger served: the served model's first, then the active models' (docs/models.md, Champion and challenger).",
          "items": {
           "type": "object",
           "additionalProperties": false,
           "required": [
            "name",
            "version",
            "percent"
           ],
           "properties": {
            "name": {
             "type": "string",
             "description": "The model it challenges."
            },
            "version": {
             "type": "string"
            },
            "percent": {
             "type": "number",
             "description": "Its share of the model's live answers, in percent."
            }
           }
          }
         },
         "models": {
          "type": "array",
          "items": {
           "$ref": "#/components/schemas/RegisteredModel"
          }
         }
        }
       },
       "RegisteredModel": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "name",
         "version",
         "served",
         "format",
         "features",
         "bytes",
         "sha256",
         "source",
         "added_by",
         "added_at"
        ],
        "properties": {
         "name": {
          "type": "string"
         },
         "version": {
          "type": "string"
         },
         "served": {
          "type": "boolean"
         },
         "format": {
          "type": "string",
          "enum": [
           "xgboost",
           "lightgbm"
          ]
         },
         "features": {
          "type": "array",
          "items": {
           "type": "string"
          }
         },
         "bytes": {
          "type": "integer"
         },
         "sha256": {
          "type": "string"
         },
         "source": {
          "type": "string"
         },
         "added_by": {
          "type": "string"
         },
         "added_at": {
          "type": "string",
          "format": "date-time"
         }
        }
       },
       "ActiveModelScore": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "name",
         "model_version",
         "probability",
         "risk_band",
         "reasons"
        ],
        "properties": {
         "name": {
          "type": "string"
         },
         "model_version": {
          "type": "string"
         },
         "probability": {
          "type": "number",
          "minimum": 0,
          "maximum": 1
         },
         "risk_band": {
          "type": "string",
          "enum": [
           "low",
           "medium",
           "high",
           "very_high"
          ]
         },
         "reasons": {
          "type": "array",
          "maxItems": 3,
          "items": {
           "$ref": "#/components/schemas/Reason"
          }
         }
        }
       },
       "ActiveModel": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "name",
         "version",
         "segment"
        ],
        "properties": {
         "name": {
          "type": "string"
         },
         "version": {
          "type": "string"
         },
         "segment": {
          "type": [
           "string",
           "null"
          ],
          "description": "The subscribers it scores, as conditions on profile features in canonical form (category names as codes); null: everyone."
         }
        }
       },
       "ActivateRequest": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "version"
        ],
        "properties": {
         "version": {
          "type": "string",
          "description": "The version, or a unique prefix of at least 6 characters."
         },
         "segment": {
          "type": "string",
          "maxLength": 2000,
          "description": "Conditions on profile features joined by and, e.g. \"contract = 'Month-to-month' and tenure_months < 12\" (docs/models.md, Several models); absent or empty: everyone."
         }
        }
       },
       "DeployRequest": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "version"
        ],
        "properties": {
         "version": {
          "type": "string",
          "description": "The version, or a unique prefix of at least 6 characters."
         },
         "as": {
          "type": "string",
          "enum": [
           "champion",
           "challenger"
          ],
          "description": "champion (the default) serves it alone and ends any challenger; challenger serves it beside the champion for a share of live answers (docs/models.md, Champion and challenger)."
         },
         "traffic": {
          "type": "number",
          "exclusiveMinimum": 0,
          "maximum": 100,
          "description": "A challenger's share of live answers, in percent (required with as = challenger; refused otherwise)."
         }
        }
       },
       "ModelDeployment": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "name",
         "version",
         "previous",
         "workers",
         "switch_seconds",
         "seconds",
         "unconfirmed_workers"
        ],
        "properties": {
         "name": {
          "type": "string"
         },
         "version": {
          "type": "string"
         },
         "previous": {
          "type": [
           "string",
           "null"
          ]
         },
         "workers": {
          "type": "integer"
         },
         "switch_seconds": {
          "type": "number",
          "description": "The window in which some shards answered with the old version and others with the new."
         },
         "seconds": {
          "type": "number"
         },
         "unconfirmed_workers": {
          "type": "array",
          "description": "Workers that did not switch even when asked again: they answer with the old version until the deployment is run again.",
          "items": {
           "type": "string"
          }
         },
         "challenger_percent": {
          "type": [
           "number",
           "null"
          ],
          "description": "Set when the version was deployed as challenger: its share of live answers, in percent."
         }
        }
       },
       "ErasureRequest": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "subscriber_ids"
        ],
        "properties": {
         "subscriber_ids": {
          "type": "array",
          "minItems": 1,
          "maxItems": 10000,
          "items": {
           "type": "integer",
           "format": "int64"
          }
         }
        }
       },
       "ErasureReport": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "subscribers",
         "found_in_memory",
         "copies",
         "workers",
         "rows",
         "snapshots",
         "seconds"
        ],
        "properties": {
         "subscribers": {
          "type": "integer",
          "description": "Distinct ids asked for."
         },
         "found_in_memory": {
          "type": "integer",
          "description": "Ids some shard held."
         },
         "copies": {
          "type": "integer",
          "description": "In-memory copies erased (an owner and its standby are two)."
         },
         "workers": {
          "type": "integer"
         },
         "rows": {
          "type": "object",
          "description": "Rows deleted per table.",
          "additionalProperties": {
           "type": "integer"
          }
         },
         "snapshots": {
          "type": "integer",
          "description": "Shard snapshots deleted (written again by churngrid profiles snapshot)."
         },
         "seconds": {
          "type": "number"
         }
        }
       },
       "TokenRevoked": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "name",
         "revoked"
        ],
        "properties": {
         "name": {
          "type": "string"
         },
         "revoked": {
          "type": "boolean"
         }
        }
       },
       "SessionRequest": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "token"
        ],
        "properties": {
         "token": {
          "type": "string"
         }
        }
       },
       "Session": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "name",
         "role"
        ],
        "properties": {
         "name": {
          "type": "string"
         },
         "role": {
          "type": "string"
         }
        }
       },
       "Health": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "status"
        ],
        "properties": {
         "status": {
          "type": "string",
          "enum": [
           "up"
          ]
         }
        }
       },
       "Ready": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "ready"
        ],
        "properties": {
         "ready": {
          "type": "boolean"
         },
         "shards": {
          "type": "integer"
         },
         "ready_shards": {
          "type": "integer"
         },
         "reason": {
          "type": "string"
         }
        }
       },
       "CampaignArmCounts": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "treatment",
         "control"
        ],
        "properties": {
         "treatment": {
          "type": "integer",
          "minimum": 0
         },
         "control": {
          "type": "integer",
          "minimum": 0
         }
        }
       },
       "LiveCampaignStarted": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "run_id",
         "campaign",
         "tier_cuts",
         "replaced_run",
         "max_trigger_age_seconds"
        ],
        "properties": {
         "run_id": {
          "type": "integer",
          "format": "int64",
          "description": "The live campaign's own run (campaign_runs)."
         },
         "campaign": {
          "type": "string"
         },
         "tier_cuts": {
          "type": "array",
          "items": {
           "type": "number"
          },
          "description": "The value tiers' cut values, from the whole base now."
         },
         "replaced_run": {
          "type": [
           "integer",
           "null"
          ],
          "format": "int64",
          "description": "The run that was live before (ended now), if any."
         },
         "max_trigger_age_seconds": {
          "type": "integer",
          "minimum": 1
         }
        }
       },
       "LiveCampaignStatus": {
        "type": "object",
        "description": "The live campaign's run and its totals so far (`run_id` null: no campaign is live). The same keys as `churngrid campaign live status --json`.",
        "required": [
         "run_id"
        ],
        "properties": {
         "run_id": {
          "type": [
           "integer",
           "null"
          ],
          "format": "int64"
         },
         "campaign": {
          "type": "string"
         },
         "live": {
          "type": "boolean"
         },
         "treatment": {
          "type": "integer",
          "minimum": 0
         },
         "control": {
          "type": "integer",
          "minimum": 0
         },
         "budget_used": {
          "type": "number"
         },
         "per_channel": {
          "type": "object",
          "additionalProperties": {
           "$ref": "#/components/schemas/CampaignArmCounts"
          }
         },
         "leases": {
          "type": "array",
          "items": {
           "type": "object",
           "required": [
            "node",
            "resource",
            "granted",
            "used"
           ],
           "properties": {
            "node": {
             "type": "string"
            },
            "resource": {
             "type": "string"
            },
            "granted": {
             "type": "number"
            },
            "used": {
             "type": "number"
            }
           }
          }
         },
         "tier_cuts": {
          "type": "array",
          "items": {
           "type": "number"
          }
         },
         "max_trigger_age_seconds": {
          "type": "integer"
         },
         "contact_generation": {
          "type": "integer"
         },
         "started_at_ms": {
          "type": "integer"
         },
         "started_by": {
          "type": "string"
         }
        }
       },
       "CampaignRunSummary": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "run_id",
         "campaign",
         "job_id",
         "model_version",
         "scanned",
         "in_cell",
         "eligible",
         "treatment",
         "control",
         "suppressed_by_policy",
         "no_capacity",
         "per_channel",
         "per_cell",
         "budget_used",
         "expected_saved_clv",
         "seconds"
        ],
        "description": "A campaign run's summary, the JSON of `churngrid campaign run --json`.",
        "properties": {
         "run_id": {
          "type": "integer",
          "format": "int64",
          "minimum": 0
         },
         "campaign": {
          "type": "string",
          "description": "The campaign's name."
         },
         "job_id": {
          "type": "integer",
          "format": "int64",
          "minimum": 0,
          "description": "The published job the run decided over."
         },
         "model_version": {
          "type": "string"
         },
         "scanned": {
          "type": "integer",
          "minimum": 0,
          "description": "Subscribers of the job looked at."
         },
         "in_cell": {
          "type": "integer",
          "minimum": 0,
          "description": "Subscribers in a cell of the strategy matrix that has offers."
         },
         "eligible": {
          "type": "integer",
          "minimum": 0,
          "description": "Subscribers with at least one offer they are eligible for."
         },
         "treatment": {
          "type": "integer",
          "minimum": 0,
          "description": "Subscribers to contact."
         },
         "control": {
          "type": "integer",
          "minimum": 0,
          "description": "Subscribers held out as the control group (never contacted)."
         },
         "suppressed_by_policy": {
          "type": "integer",
          "minimum": 0,
          "description": "Subscribers the contact policy forbade contacting."
         },
         "no_capacity": {
          "type": "integer",
          "minimum": 0,
          "description": "Subscribers left out by channel capacity or the budget."
         },
         "per_channel": {
          "type": "object",
          "description": "Per channel.",
          "additionalProperties": {
           "$ref": "#/components/schemas/CampaignArmCounts"
          }
         },
         "per_cell": {
          "type": "object",
          "description": "Per strategy-matrix cell (tier/band).",
          "additionalProperties": {
           "$ref": "#/components/schemas/CampaignArmCounts"
          }
         },
         "budget_used": {
          "type": "number",
          "minimum": 0
         },
         "expected_saved_clv": {
          "type": "number",
          "description": "Expected CLV saved by the treatment, before costs, on the model's estimates."
         },
         "seconds": {
          "type": "number",
          "minimum": 0
         }
        }
       },
       "CampaignReportArm": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "subscribers",
         "churned",
         "churn_rate"
        ],
        "properties": {
         "subscribers": {
          "type": "integer",
          "minimum": 0
         },
         "churned": {
          "type": "integer",
          "minimum": 0
         },
         "churn_rate": {
          "type": [
           "number",
           "null"
          ],
          "minimum": 0,
          "maximum": 1,
          "description": "Null when the arm has no observed subscriber."
         }
        }
       },
       "CampaignReportGroup": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "treatment",
         "control",
         "uplift_pp",
         "uplift_ci95_pp",
         "uplift_wald_ci95_pp",
         "retained",
         "saved_clv",
         "offer_cost",
         "net_value"
        ],
        "properties": {
         "treatment": {
          "$ref": "#/components/schemas/CampaignReportArm"
         },
         "control": {
          "$ref": "#/components/schemas/CampaignReportArm"
         },
         "uplift_pp": {
          "type": [
           "number",
           "null"
          ],
          "description": "Control churn rate − treatment churn rate, in percentage points; null when an arm is empty."
         },
         "uplift_ci95_pp": {
          "type": [
           "array",
           "null"
          ],
          "items": {
           "type": "number"
          },
          "minItems": 2,
          "maxItems": 2,
          "description": "Newcombe's 95% interval of the uplift, [low, high] in percentage points; null when an arm is empty."
         },
         "uplift_wald_ci95_pp": {
          "type": [
           "array",
           "null"
          ],
          "items": {
           "type": "number"
          },
          "minItems": 2,
          "maxItems": 2,
          "description": "The Wald 95% interval, for reference only; null when an arm is empty."
         },
         "retained": {
          "type": [
           "number",
           "null"
          ],
          "description": "Subscribers kept: uplift × the treated (an estimate, fractional; negative when contacts made people leave)."
         },
         "saved_clv": {
          "type": [
           "number",
           "null"
          ],
          "description": "retained × the mean CLV of the treated."
         },
         "offer_cost": {
          "type": "number",
          "description": "The cost of the treated subscribers' offers."
         },
         "net_value": {
          "type": [
           "number",
           "null"
          ],
          "description": "saved_clv − offer_cost."
         }
        }
       },
       "CampaignReport": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "run_id",
         "window_days",
         "treatment",
         "control",
         "uplift_pp",
         "uplift_ci95_pp",
         "uplift_wald_ci95_pp",
         "retained",
         "saved_clv",
         "offer_cost",
         "net_value",
         "unobserved",
         "per_offer",
         "per_channel",
         "per_reason",
         "per_cell",
         "qini",
         "uplift_at_30pct"
        ],
        "description": "A run measured against its control group (docs/retention.md), the JSON of `churngrid campaign report RUN --json`. A value that cannot be estimated is null, never absent. Outcomes from `churngrid simulate` make these results on the synthetic base.",
        "properties": {
         "run_id": {
          "type": "string",
          "description": "The run's id (as a string)."
         },
         "window_days": {
          "type": "number",
          "description": "Days after the run in which an outcome counts."
         },
         "treatment": {
          "$ref": "#/components/schemas/CampaignReportArm"
         },
         "control": {
          "$ref": "#/components/schemas/CampaignReportArm"
         },
         "uplift_pp": {
          "type": [
           "number",
           "null"
          ],
          "description": "Control churn rate − treatment churn rate, in percentage points; null when an arm is empty."
         },
         "uplift_ci95_pp": {
          "type": [
           "array",
           "null"
          ],
          "items": {
           "type": "number"
          },
          "minItems": 2,
          "maxItems": 2,
          "description": "Newcombe's 95% interval of the uplift, [low, high] in percentage points; null when an arm is empty."
         },
         "uplift_wald_ci95_pp": {
          "type": [
           "array",
           "null"
          ],
          "items": {
           "type": "number"
          },
          "minItems": 2,
          "maxItems": 2,
          "description": "The Wald 95% interval, for reference only; null when an arm is empty."
         },
         "retained": {
          "type": [
           "number",
           "null"
          ],
          "description": "Subscribers kept: uplift × the treated (an estimate, fractional; negative when contacts made people leave)."
         },
         "saved_clv": {
          "type": [
           "number",
           "null"
          ],
          "description": "retained × the mean CLV of the treated."
         },
         "offer_cost": {
          "type": "number",
          "description": "The cost of the treated subscribers' offers."
         },
         "net_value": {
          "type": [
           "number",
           "null"
          ],
          "description": "saved_clv − offer_cost."
         },
         "unobserved": {
          "type": "object",
          "additionalProperties": false,
          "required": [
           "treatment",
           "control"
          ],
          "description": "Subscribers of the run without an outcome in the window, left out of every figure.",
          "properties": {
           "treatment": {
            "type": "integer",
            "minimum": 0
           },
           "control": {
            "type": "integer",
            "minimum": 0
           }
          }
         },
         "per_offer": {
          "type": "object",
          "description": "Per offer id (a control subscriber counts under the offer it would have had).",
          "additionalProperties": {
           "$ref": "#/components/schemas/CampaignReportGroup"
          }
         },
         "per_channel": {
          "type": "object",
          "description": "Per channel.",
          "additionalProperties": {
           "$ref": "#/components/schemas/CampaignReportGroup"
          }
         },
         "per_reason": {
          "type": "object",
          "description": "Per the subscriber's top churn reason.",
          "additionalProperties": {
           "$ref": "#/components/schemas/CampaignReportGroup"
          }
         },
         "per_cell": {
          "type": "object",
          "description": "Per strategy-matrix cell (tier/band).",
          "additionalProperties": {
           "$ref": "#/components/schemas/CampaignReportGroup"
          }
         },
         "qini": {
          "type": [
           "number",
           "null"
          ],
          "description": "The Qini coefficient of the run's ranking by expected value; null where undefined."
         },
         "uplift_at_30pct": {
          "type": [
           "number",
           "null"
          ],
          "description": "Uplift among the top 30% by expected value, as a fraction of retention (as scikit-uplift gives it); null where undefined."
         }
        }
       },
       "OutcomesImported": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "inserted",
         "replaced"
        ],
        "properties": {
         "inserted": {
          "type": "integer",
          "minimum": 0,
          "description": "Outcomes stored."
         },
         "replaced": {
          "type": "integer",
          "minimum": 0,
          "description": "Outcomes that replaced one of the same subscriber at the same time."
         }
        }
       },
       "EventResults": {
        "type": "object",
        "additionalProperties": false,
        "required": [
         "events",
         "accepted",
         "duplicates",
         "rejected",
         "unsettled",
         "rejected_by_reason",
         "results"
        ],
        "properties": {
         "events": {
          "type": "integer",
          "minimum": 0
         },
         "accepted": {
          "type": "integer",
          "minimum": 0
         },
         "duplicates": {
          "type": "integer",
          "minimum": 0
         },
         "rejected": {
          "type": "integer",
          "minimum": 0
         },
         "unsettled": {
          "type": "integer",
          "minimum": 0
         },
         "rejected_by_reason": {
          "type": "object",
          "additionalProperties": {
           "type": "integer",
           "minimum": 1
          }
         },
         "results": {
          "type": "array",
          "items": {
           "type": "object",
           "additionalProperties": false,
           "required": [
            "line",
            "status"
           ],
           "properties": {
            "line": {
             "type": "integer",
             "minimum": 1
            },
            "status": {
             "type": "string",
             "enum": [
              "accepted",
              "duplicate",
              "rejected",
              "retry"
             ]
            },
            "seq": {
             "type": "integer",
             "minimum": 1
            },
            "reason": {
             "type": "string"
            }
           }
          }
         }
        }
       }
      },
      "responses": {
       "Problem400": {
        "description": "The request is malformed: a parameter, a field of the body or the JSON itself (see `field`).",
        "content": {
         "application/problem+json": {
          "schema": {
           "$ref": "#/components/schemas/Problem"
          }
         }
        }
       },
       "Problem401": {
        "description": "No valid bearer token or session.",
        "content": {
         "application/problem+json": {
          "schema": {
           "$ref": "#/components/schemas/Problem"
          }
         }
        }
       },
       "Problem403": {
        "description": "The token's role may not call this.",
        "content": {
         "application/problem+json": {
          "schema": {
           "$ref": "#/components/schemas/Problem"
          }
         }
        }
       },
       "Problem404": {
        "description": "No such resource (subscriber, job, node, token or campaign run).",
        "content": {
         "application/problem+json": {
          "schema": {
           "$ref": "#/components/schemas/Problem"
          }
         }
        }
       },
       "Problem405": {
        "description": "Method not allowed here.",
        "content": {
         "application/problem+json": {
          "schema": {
           "$ref": "#/components/schemas/Problem"
          }
         }
        }
       },
       "Problem409": {
        "description": "Conflicts with the cluster's state (a job running, a node that cannot drain, a name taken, a job without summary or drift, a campaign with no published job or another job published than the one named, another campaign run deciding).",
        "content": {
         "application/problem+json": {
          "schema": {
           "$ref": "#/components/schemas/Problem"
          }
         }
        }
       },
       "Problem413": {
        "description": "The body is larger than the endpoint's limit (1 MiB; 256 MiB for outcomes).",
        "content": {
         "application/problem+json": {
          "schema": {
           "$ref": "#/components/schemas/Problem"
          }
         }
        }
       },
       "Problem415": {
        "description": "The body is not of the endpoint's type (application/json; application/x-ndjson for events; text/csv for outcomes).",
        "content": {
         "application/problem+json": {
          "schema": {
           "$ref": "#/components/schemas/Problem"
          }
         }
        }
       },
       "Problem422": {
        "description": "The body is well formed but names what the cluster does not have (outcomes of unknown subscribers, with their `lines`); nothing was stored.",
        "content": {
         "application/problem+json": {
          "schema": {
           "$ref": "#/components/schemas/Problem"
          }
         }
        }
       },
       "Problem503": {
        "description": "Not available now: this coordinator stands by, a shard has no ready worker, or PostgreSQL is away. Retry after `Retry-After` seconds.",
        "content": {
         "application/problem+json": {
          "schema": {
           "$ref": "#/components/schemas/Problem"
          }
         }
        }
       }
      }
     },
     "paths": {
      "/": {
       "get": {
        "operationId": "dashboard",
        "summary": "The dashboard page (loads without a token; its data needs a session).",
        "security": [],
        "responses": {
         "200": {
          "description": "HTML page",
          "content": {
           "text/html": {
            "schema": {
             "type": "string"
            }
           }
          }
         }
        }
       }
      },
      "/dashboard.js": {
       "get": {
        "operationId": "dashboardScript",
        "summary": "The dashboard's script.",
        "security": [],
        "responses": {
         "200": {
          "description": "JavaScript",
          "content": {
           "text/javascript": {
            "schema": {
             "type": "string"
            }
           }
          }
         }
        }
       }
      },
      "/dashboard.css": {
       "get": {
        "operationId": "dashboardStyle",
        "summary": "The dashboard's style.",
        "security": [],
        "responses": {
         "200": {
          "description": "CSS",
          "content": {
           "text/css": {
            "schema": {
             "type": "string"
            }
           }
          }
         }
        }
       }
      },
      "/openapi.json": {
       "get": {
        "operationId": "openapi",
        "summary": "This document.",
        "security": [],
        "responses": {
         "200": {
          "description": "OpenAPI 3.1 document",
          "content": {
           "application/json": {
            "schema": {
             "type": "object"
            }
           }
          }
         }
        }
       }
      },
      "/healthz": {
       "get": {
        "operationId": "healthz",
        "summary": "The process is up (liveness).",
        "security": [],
        "responses": {
         "200": {
          "description": "Up",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/Health"
            }
           }
          }
         }
        }
       }
      },
      "/readyz": {
       "get": {
        "operationId": "readyz",
        "summary": "Readiness: this coordinator leads and every shard has a ready owner.",
        "security": [],
        "responses": {
         "200": {
          "description": "Ready",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/Ready"
            }
           }
          }
         },
         "503": {
          "description": "Not ready (standing by, or shards without a ready owner).",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/Ready"
            }
           }
          }
         }
        }
       }
      },
      "/metrics": {
       "get": {
        "operationId": "metrics",
        "summary": "Prometheus metrics (text format 0.0.4).",
        "security": [],
        "responses": {
         "200": {
          "description": "Metrics",
          "content": {
           "text/plain": {
            "schema": {
             "type": "string"
            }
           }
          }
         }
        }
       }
      },
      "/v1/session": {
       "post": {
        "operationId": "createSession",
        "summary": "Sign in with a token: sets the HttpOnly session cookie the dashboard uses (the token never goes in a URL).",
        "security": [],
        "requestBody": {
         "required": true,
         "content": {
          "application/json": {
           "schema": {
            "$ref": "#/components/schemas/SessionRequest"
           }
          }
         }
        },
        "responses": {
         "200": {
          "description": "Signed in; `Set-Cookie: churngrid_session=…; HttpOnly; SameSite=Strict`",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/Session"
            }
           }
          }
         },
         "400": {
          "$ref": "#/components/responses/Problem400"
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "413": {
          "$ref": "#/components/responses/Problem413"
         },
         "415": {
          "$ref": "#/components/responses/Problem415"
         }
        }
       },
       "delete": {
        "operationId": "deleteSession",
        "summary": "Sign out.",
        "security": [],
        "responses": {
         "204": {
          "description": "Signed out; the cookie is cleared."
         }
        }
       }
      },
      "/v1/subscribers/{id}/score": {
       "get": {
        "operationId": "getScore",
        "summary": "One subscriber's churn score computed now from its in-memory profile, with its reasons.",
        "security": [
         {
          "bearer": []
         },
         {
          "session": []
         }
        ],
        "parameters": [
         {
          "name": "id",
          "in": "path",
          "required": true,
          "schema": {
           "type": "integer",
           "format": "int64",
           "minimum": 0
          }
         },
         {
          "name": "explain",
          "in": "query",
          "required": false,
          "schema": {
           "type": "string",
           "enum": [
            "approx",
            "exact"
           ],
           "default": "approx"
          },
          "description": "approx: path attribution (what jobs store); exact: TreeSHAP."
         },
         {
          "name": "models",
          "in": "query",
          "required": false,
          "schema": {
           "type": "string",
           "enum": [
            "served",
            "all"
           ],
           "default": "served"
          },
          "description": "all: also the answers of the models active beside the served one whose segment holds the subscriber (active_models; docs/models.md, Several models), from the same profile; they are explained by path attribution."
         }
        ],
        "responses": {
         "200": {
          "description": "The live score",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/Score"
            }
           }
          }
         },
         "400": {
          "$ref": "#/components/responses/Problem400"
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "404": {
          "$ref": "#/components/responses/Problem404"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/scores:batch": {
       "post": {
        "operationId": "batchScores",
        "summary": "Up to 10,000 subscribers' live scores with reasons (1,000 with explain=exact), in the order asked; ids whose worker could not answer after one retry with a fresh shard map are listed in `unavailable`.",
        "security": [
         {
          "bearer": []
         }
        ],
        "parameters": [
         {
          "name": "models",
          "in": "query",
          "required": false,
          "schema": {
           "type": "string",
           "enum": [
            "served",
            "all"
           ],
           "default": "served"
          },
          "description": "all: each score also carries the answers of the models active beside the served one whose segment holds the subscriber (active_models), from the same profile, explained by path attribution."
         }
        ],
        "requestBody": {
         "required": true,
         "content": {
          "application/json": {
           "schema": {
            "$ref": "#/components/schemas/BatchRequest"
           }
          }
         }
        },
        "responses": {
         "200": {
          "description": "Scores; unknown ids in `not_found`",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/BatchScores"
            }
           }
          }
         },
         "400": {
          "$ref": "#/components/responses/Problem400"
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "413": {
          "$ref": "#/components/responses/Problem413"
         },
         "415": {
          "$ref": "#/components/responses/Problem415"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/jobs": {
       "get": {
        "operationId": "listJobs",
        "summary": "The most recent rescoring jobs, newest first.",
        "security": [
         {
          "bearer": []
         },
         {
          "session": []
         }
        ],
        "parameters": [
         {
          "name": "limit",
          "in": "query",
          "required": false,
          "schema": {
           "type": "integer",
           "minimum": 1,
           "maximum": 100,
           "default": 20
          }
         }
        ],
        "responses": {
         "200": {
          "description": "Jobs",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/JobList"
            }
           }
          }
         },
         "400": {
          "$ref": "#/components/responses/Problem400"
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       },
       "post": {
        "operationId": "startJob",
        "summary": "Start rescoring the whole base (role operator). Refused while a job runs.",
        "security": [
         {
          "bearer": []
         }
        ],
        "responses": {
         "202": {
          "description": "Started",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/Job"
            }
           }
          },
          "headers": {
           "Location": {
            "schema": {
             "type": "string"
            },
            "description": "/v1/jobs/{id}"
           }
          }
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "409": {
          "$ref": "#/components/responses/Problem409"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/jobs/{id}": {
       "get": {
        "operationId": "getJob",
        "summary": "A job's progress or outcome.",
        "security": [
         {
          "bearer": []
         },
         {
          "session": []
         }
        ],
        "parameters": [
         {
          "name": "id",
          "in": "path",
          "required": true,
          "schema": {
           "type": "integer",
           "format": "int64",
           "minimum": 0
          }
         }
        ],
        "responses": {
         "200": {
          "description": "The job",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/Job"
            }
           }
          }
         },
         "400": {
          "$ref": "#/components/responses/Problem400"
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "404": {
          "$ref": "#/components/responses/Problem404"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/jobs/{id}/summary": {
       "get": {
        "operationId": "getJobSummary",
        "summary": "A completed job's summary: histogram, deciles, bands, regions, the ten highest-risk subscribers.",
        "security": [
         {
          "bearer": []
         },
         {
          "session": []
         }
        ],
        "parameters": [
         {
          "name": "id",
          "in": "path",
          "required": true,
          "schema": {
           "type": "integer",
           "format": "int64",
           "minimum": 0
          }
         }
        ],
        "responses": {
         "200": {
          "description": "The summary",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/JobSummary"
            }
           }
          }
         },
         "400": {
          "$ref": "#/components/responses/Problem400"
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "404": {
          "$ref": "#/components/responses/Problem404"
         },
         "409": {
          "$ref": "#/components/responses/Problem409"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/jobs/{id}/drift": {
       "get": {
        "operationId": "getJobDrift",
        "summary": "A completed job's drift: the population stability index of every feature the model reads and of the score against the model version's reference (docs/models.md), worst first; watch from 0.1, act from 0.25.",
        "security": [
         {
          "bearer": []
         },
         {
          "session": []
         }
        ],
        "parameters": [
         {
          "name": "id",
          "in": "path",
          "required": true,
          "schema": {
           "type": "integer",
           "format": "int64",
           "minimum": 0
          }
         }
        ],
        "responses": {
         "200": {
          "description": "The drift",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/JobDrift"
            }
           }
          }
         },
         "400": {
          "$ref": "#/components/responses/Problem400"
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "404": {
          "$ref": "#/components/responses/Problem404"
         },
         "409": {
          "$ref": "#/components/responses/Problem409"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/stream": {
       "get": {
        "operationId": "stream",
        "summary": "Server-Sent Events: `job` (the current or last job as a Job, or null; on change and every 5 s) and `cluster` (term, epoch, shards, nodes; every 2 s).",
        "security": [
         {
          "bearer": []
         },
         {
          "session": []
         }
        ],
        "responses": {
         "200": {
          "description": "An event stream",
          "content": {
           "text/event-stream": {
            "schema": {
             "type": "string"
            }
           }
          }
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/cluster": {
       "get": {
        "operationId": "getCluster",
        "summary": "Nodes, shards, epoch, term, moves, the current job.",
        "security": [
         {
          "bearer": []
         },
         {
          "session": []
         }
        ],
        "responses": {
         "200": {
          "description": "The cluster",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/Cluster"
            }
           }
          }
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/nodes/{name}:drain": {
       "post": {
        "operationId": "drainNode",
        "summary": "Move every shard off a worker (role admin); answers when done, and the worker exits.",
        "security": [
         {
          "bearer": []
         }
        ],
        "parameters": [
         {
          "name": "name",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          }
         }
        ],
        "responses": {
         "200": {
          "description": "Drained",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/Drained"
            }
           }
          }
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "404": {
          "$ref": "#/components/responses/Problem404"
         },
         "409": {
          "$ref": "#/components/responses/Problem409"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/tokens": {
       "get": {
        "operationId": "listTokens",
        "summary": "Every token (role admin): names, roles, who made them, when; never the tokens.",
        "security": [
         {
          "bearer": []
         },
         {
          "session": []
         }
        ],
        "responses": {
         "200": {
          "description": "Tokens",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/TokenList"
            }
           }
          }
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       },
       "post": {
        "operationId": "createToken",
        "summary": "Create a token (role admin); it is shown only in this answer.",
        "security": [
         {
          "bearer": []
         }
        ],
        "requestBody": {
         "required": true,
         "content": {
          "application/json": {
           "schema": {
            "$ref": "#/components/schemas/TokenRequest"
           }
          }
         }
        },
        "responses": {
         "201": {
          "description": "Created",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/TokenCreated"
            }
           }
          }
         },
         "400": {
          "$ref": "#/components/responses/Problem400"
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "409": {
          "$ref": "#/components/responses/Problem409"
         },
         "413": {
          "$ref": "#/components/responses/Problem413"
         },
         "415": {
          "$ref": "#/components/responses/Problem415"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/tokens/{name}:revoke": {
       "post": {
        "operationId": "revokeToken",
        "summary": "Revoke a token (role admin): refused everywhere within 2 s, its sessions end.",
        "security": [
         {
          "bearer": []
         }
        ],
        "parameters": [
         {
          "name": "name",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          }
         }
        ],
        "responses": {
         "200": {
          "description": "Revoked",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/TokenRevoked"
            }
           }
          }
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "404": {
          "$ref": "#/components/responses/Problem404"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/models": {
       "get": {
        "operationId": "listModels",
        "summary": "Every registered model version, the one served marked (role reader; churngrid models list; docs/models.md, Registry).",
        "security": [
         {
          "bearer": []
         },
         {
          "session": []
         }
        ],
        "responses": {
         "200": {
          "description": "The registry",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/ModelList"
            }
           }
          }
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/models/{name}:deploy": {
       "post": {
        "operationId": "deployModel",
        "summary": "Serve a registered version (role admin; churngrid models deploy; docs/models.md, Deployment): every worker loads it first (all or nothing), then every shard and standby switches between two answers; no query fails, no profile is reloaded. 409 while a job, a campaign run, an erasure or another deployment runs.",
        "security": [
         {
          "bearer": []
         }
        ],
        "parameters": [
         {
          "name": "name",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          }
         }
        ],
        "requestBody": {
         "required": true,
         "content": {
          "application/json": {
           "schema": {
            "$ref": "#/components/schemas/DeployRequest"
           }
          }
         }
        },
        "responses": {
         "200": {
          "description": "Deployed (previous is null when the version was already served)",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/ModelDeployment"
            }
           }
          }
         },
         "400": {
          "$ref": "#/components/responses/Problem400"
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "404": {
          "$ref": "#/components/responses/Problem404"
         },
         "409": {
          "$ref": "#/components/responses/Problem409"
         },
         "413": {
          "$ref": "#/components/responses/Problem413"
         },
         "415": {
          "$ref": "#/components/responses/Problem415"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/models/{name}:promote": {
       "post": {
        "operationId": "promoteModel",
        "summary": "Make the model's challenger its champion (role admin; churngrid models promote; docs/models.md, Champion and challenger): a champion deployment of the challenger's version, which every worker has loaded already; the challenger ends. 409 when the model has no challenger, or while a job, a campaign run, an erasure or another deployment runs.",
        "security": [
         {
          "bearer": []
         }
        ],
        "parameters": [
         {
          "name": "name",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          }
         }
        ],
        "responses": {
         "200": {
          "description": "Promoted",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/ModelDeployment"
            }
           }
          }
         },
         "400": {
          "$ref": "#/components/responses/Problem400"
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "404": {
          "$ref": "#/components/responses/Problem404"
         },
         "409": {
          "$ref": "#/components/responses/Problem409"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/models/{name}:activate": {
       "post": {
        "operationId": "activateModel",
        "summary": "Score a registered model beside the served one in every job, for the subscribers of a segment or everyone (role admin; churngrid models activate; docs/models.md, Several models): every worker loads it first, then it is recorded. Activating an active model again changes its version or segment. 400 for a segment that does not parse or names a feature the schema lacks; 409 for the served model's name, or while a job, a campaign run, an erasure or a deployment runs.",
        "security": [
         {
          "bearer": []
         }
        ],
        "parameters": [
         {
          "name": "name",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          }
         }
        ],
        "requestBody": {
         "required": true,
         "content": {
          "application/json": {
           "schema": {
            "$ref": "#/components/schemas/ActivateRequest"
           }
          }
         }
        },
        "responses": {
         "200": {
          "description": "Active",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/ActiveModel"
            }
           }
          }
         },
         "400": {
          "$ref": "#/components/responses/Problem400"
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "404": {
          "$ref": "#/components/responses/Problem404"
         },
         "409": {
          "$ref": "#/components/responses/Problem409"
         },
         "413": {
          "$ref": "#/components/responses/Problem413"
         },
         "415": {
          "$ref": "#/components/responses/Problem415"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/models/{name}:deactivate": {
       "post": {
        "operationId": "deactivateModel",
        "summary": "Stop scoring an active model beside the served one (role admin; churngrid models deactivate): jobs from the next one on no longer score it; its published scores stay until the next job. 404 when it is not active.",
        "security": [
         {
          "bearer": []
         }
        ],
        "parameters": [
         {
          "name": "name",
          "in": "path",
          "required": true,
          "schema": {
           "type": "string"
          }
         }
        ],
        "responses": {
         "200": {
          "description": "No longer active",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/ActiveModel"
            }
           }
          }
         },
         "400": {
          "$ref": "#/components/responses/Problem400"
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "404": {
          "$ref": "#/components/responses/Problem404"
         },
         "409": {
          "$ref": "#/components/responses/Problem409"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/subscribers:erase": {
       "post": {
        "operationId": "eraseSubscribers",
        "summary": "Erase subscribers who asked to be forgotten (role admin; docs/models.md, Erasure): every worker erases them from every shard, standby and loading copy, then one PostgreSQL transaction deletes their profiles, scores, events, triggers, campaign actions, contacts, consent and outcomes and the shards' snapshots. The audit log records that it happened. 409 while a job, a campaign run or another erasure runs; 503 when a worker did not confirm or PostgreSQL failed (run it again: erasing twice is harmless).",
        "security": [
         {
          "bearer": []
         }
        ],
        "requestBody": {
         "required": true,
         "content": {
          "application/json": {
           "schema": {
            "$ref": "#/components/schemas/ErasureRequest"
           }
          }
         }
        },
        "responses": {
         "200": {
          "description": "Erased",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/ErasureReport"
            }
           }
          }
         },
         "400": {
          "$ref": "#/components/responses/Problem400"
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "409": {
          "$ref": "#/components/responses/Problem409"
         },
         "413": {
          "$ref": "#/components/responses/Problem413"
         },
         "415": {
          "$ref": "#/components/responses/Problem415"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/campaigns/runs": {
       "post": {
        "operationId": "runCampaign",
        "summary": "Decide a campaign over the published job (role operator; docs/retention.md): offers by value tier × risk band and reason, the contact policy, a control group, capacity and budget; the run, its actions and contacts are recorded in one transaction. The body is the campaign file (at most 1 MiB; example Deploy/campaign.json). Answers when the run is recorded; one run at a time.",
        "security": [
         {
          "bearer": []
         }
        ],
        "parameters": [
         {
          "name": "job",
          "in": "query",
          "required": false,
          "description": "The published job the run must decide over (409 if another job is published).",
          "schema": {
           "type": "integer",
           "format": "int64",
           "minimum": 0
          }
         },
         {
          "name": "Idempotency-Key",
          "in": "header",
          "required": false,
          "description": "This request's name (1–128 letters, digits and '._:-'). Sent again with the same key (after a timeout, a cut connection, a 503 without Retry-After), the request is answered with the run the first one wrote: nothing is decided or contacted twice. Without it, a retry is a new run.",
          "schema": {
           "type": "string",
           "pattern": "^[A-Za-z0-9._:-]{1,128}$"
          }
         }
        ],
        "requestBody": {
         "required": true,
         "content": {
          "application/json": {
           "schema": {
            "type": "object",
            "description": "The campaign file (docs/retention.md)."
           }
          }
         }
        },
        "responses": {
         "200": {
          "description": "The run's summary",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/CampaignRunSummary"
            }
           }
          }
         },
         "400": {
          "$ref": "#/components/responses/Problem400"
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "409": {
          "$ref": "#/components/responses/Problem409"
         },
         "413": {
          "$ref": "#/components/responses/Problem413"
         },
         "415": {
          "$ref": "#/components/responses/Problem415"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/campaigns/live": {
       "get": {
        "operationId": "getLiveCampaign",
        "summary": "The live campaign (role reader; docs/retention.md, \"Real time\"): its run, actions per arm and channel so far, budget used and each worker's lease.",
        "security": [
         {
          "bearer": []
         },
         {
          "session": []
         }
        ],
        "responses": {
         "200": {
          "description": "The live campaign, or `run_id` null",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/LiveCampaignStatus"
            }
           }
          }
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       },
       "put": {
        "operationId": "startLiveCampaign",
        "summary": "Make a campaign live (role operator): every trigger a worker fires is decided on that worker with it — cell, reasons, contact policy, control group, capacity and budget leased to the workers — and recorded as an action of its own run. Value tiers are cut now over the whole base. Replaces the campaign live before. The body is the campaign file.",
        "security": [
         {
          "bearer": []
         }
        ],
        "parameters": [
         {
          "name": "max_trigger_age_seconds",
          "in": "query",
          "required": false,
          "description": "Triggers received longer ago than this are not decided (default 600).",
          "schema": {
           "type": "integer",
           "minimum": 1,
           "maximum": 86400
          }
         }
        ],
        "requestBody": {
         "required": true,
         "content": {
          "application/json": {
           "schema": {
            "type": "object",
            "description": "The campaign file (docs/retention.md)."
           }
          }
         }
        },
        "responses": {
         "200": {
          "description": "The campaign is live",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/LiveCampaignStarted"
            }
           }
          }
         },
         "400": {
          "$ref": "#/components/responses/Problem400"
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "409": {
          "$ref": "#/components/responses/Problem409"
         },
         "413": {
          "$ref": "#/components/responses/Problem413"
         },
         "415": {
          "$ref": "#/components/responses/Problem415"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       },
       "delete": {
        "operationId": "stopLiveCampaign",
        "summary": "End the live campaign (role operator): triggers are no longer decided; its run's summary is written and returned (`run_id` null: none was live).",
        "security": [
         {
          "bearer": []
         }
        ],
        "responses": {
         "200": {
          "description": "The ended run's summary",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/LiveCampaignStatus"
            }
           }
          }
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/campaigns/runs/{run}/report": {
       "get": {
        "operationId": "getCampaignReport",
        "summary": "A run's measured result (role operator): churn in treatment vs control over the outcomes observed within `window_days` after the run, uplift with its 95% interval, retained subscribers, net value, per offer, channel, reason and cell; Qini and uplift@30%.",
        "security": [
         {
          "bearer": []
         },
         {
          "session": []
         }
        ],
        "parameters": [
         {
          "name": "run",
          "in": "path",
          "required": true,
          "schema": {
           "type": "integer",
           "format": "int64",
           "minimum": 0
          }
         },
         {
          "name": "window_days",
          "in": "query",
          "required": false,
          "schema": {
           "type": "integer",
           "minimum": 1,
           "maximum": 3650,
           "default": 30
          }
         }
        ],
        "responses": {
         "200": {
          "description": "The report",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/CampaignReport"
            }
           }
          }
         },
         "400": {
          "$ref": "#/components/responses/Problem400"
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "404": {
          "$ref": "#/components/responses/Problem404"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/campaigns/runs/{run}/actions.csv": {
       "get": {
        "operationId": "exportCampaignActions",
        "summary": "A run's treatment actions on one channel as CSV (role operator), in priority order, for the channel's system: subscriber_id, offer_id, channel, send_after, priority, expected_value, reasons (;-separated), script.",
        "security": [
         {
          "bearer": []
         },
         {
          "session": []
         }
        ],
        "parameters": [
         {
          "name": "run",
          "in": "path",
          "required": true,
          "schema": {
           "type": "integer",
           "format": "int64",
           "minimum": 0
          }
         },
         {
          "name": "channel",
          "in": "query",
          "required": true,
          "schema": {
           "type": "string",
           "enum": [
            "sms",
            "push",
            "email",
            "call",
            "robot_call"
           ]
          }
         }
        ],
        "responses": {
         "200": {
          "description": "CSV with a header line",
          "content": {
           "text/csv": {
            "schema": {
             "type": "string"
            }
           }
          }
         },
         "400": {
          "$ref": "#/components/responses/Problem400"
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "404": {
          "$ref": "#/components/responses/Problem404"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/outcomes": {
       "post": {
        "operationId": "importOutcomes",
        "summary": "Import observed outcomes (role operator), all or nothing: CSV with a header naming subscriber_id, churned (0/1), accepted (0/1 or empty, optional column) and observed_at (ISO 8601), at most 256 MiB and 5,000,000 outcomes. A malformed line is a 400 naming it; outcomes of unknown subscribers a 422 naming their lines. A subscriber's outcome at the same time as a stored one replaces it.",
        "security": [
         {
          "bearer": []
         }
        ],
        "requestBody": {
         "required": true,
         "content": {
          "text/csv": {
           "schema": {
            "type": "string"
           }
          }
         }
        },
        "responses": {
         "200": {
          "description": "Stored",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/OutcomesImported"
            }
           }
          }
         },
         "400": {
          "$ref": "#/components/responses/Problem400"
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "413": {
          "$ref": "#/components/responses/Problem413"
         },
         "415": {
          "$ref": "#/components/responses/Problem415"
         },
         "422": {
          "$ref": "#/components/responses/Problem422"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      },
      "/v1/events": {
       "post": {
        "operationId": "postEvents",
        "summary": "Up to 10,000 subscriber events (NDJSON, one event a line, docs/events.md) sent to the workers owning their subscribers: each is logged durably and applied before it is answered `accepted`; a re-sent event is a `duplicate` and is not applied again; a wrong line is `rejected` with its reason; `retry` means the cluster had not settled it within 10 s (send it again).",
        "security": [
         {
          "bearer": []
         }
        ],
        "requestBody": {
         "required": true,
         "content": {
          "application/x-ndjson": {
           "schema": {
            "type": "string"
           }
          }
         }
        },
        "responses": {
         "200": {
          "description": "One result per non-blank line, in line order",
          "content": {
           "application/json": {
            "schema": {
             "$ref": "#/components/schemas/EventResults"
            }
           }
          }
         },
         "400": {
          "$ref": "#/components/responses/Problem400"
         },
         "401": {
          "$ref": "#/components/responses/Problem401"
         },
         "403": {
          "$ref": "#/components/responses/Problem403"
         },
         "413": {
          "$ref": "#/components/responses/Problem413"
         },
         "415": {
          "$ref": "#/components/responses/Problem415"
         },
         "503": {
          "$ref": "#/components/responses/Problem503"
         }
        }
       }
      }
     }
    }
    """#
}
