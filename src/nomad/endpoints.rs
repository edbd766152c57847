//! The Nomad endpoints Steward uses, as methods on [`Client`].
//!
//! Reads take [`QueryOptions`] and return a [`Response`] with the `X-Nomad-*` metadata. Writes
//! return Nomad's response body. Namespace and region come from the client's [`super::Config`].

use reqwest::Method;
use serde::de::DeserializeOwned;

use super::client::Call;
use super::*;

impl Client {
    // Jobs.

    /// Lists jobs (`GET /v1/jobs`), optionally only those whose ID starts with `prefix`. With
    /// `with_meta`, each stub carries the job's `Meta`.
    pub async fn list_jobs(
        &self,
        prefix: Option<&str>,
        with_meta: bool,
        options: QueryOptions,
    ) -> Result<Response<Vec<JobListStub>>, Error> {
        let mut call = Call::get("/v1/jobs", &["jobs"], options);
        if let Some(prefix) = prefix {
            call = call.param("prefix", prefix);
        }
        if with_meta {
            call = call.param("meta", "true");
        }
        self.execute(call).await
    }

    /// Reads a job (`GET /v1/job/:id`). A missing job is [`Error::NotFound`].
    pub async fn read_job(
        &self,
        job_id: &str,
        options: QueryOptions,
    ) -> Result<Response<Job>, Error> {
        self.execute(Call::get("/v1/job/:id", &["job", job_id], options))
            .await
    }

    /// Registers or updates a job (`POST /v1/jobs`). With `EnforceIndex`, a job changed since
    /// it was read gives [`Error::Conflict`].
    pub async fn register_job(
        &self,
        request: &JobRegisterRequest,
    ) -> Result<JobRegisterResponse, Error> {
        let call = Call::write(Method::POST, "/v1/jobs", &["jobs"], Some(request))?;
        Ok(self.execute(call).await?.value)
    }

    /// Stops a job (`DELETE /v1/job/:id`). With `purge`, Nomad also removes it.
    pub async fn deregister_job(
        &self,
        job_id: &str,
        purge: bool,
    ) -> Result<JobDeregisterResponse, Error> {
        let mut call = Call::write(Method::DELETE, "/v1/job/:id", &["job", job_id], None::<&()>)?;
        if purge {
            call = call.param("purge", "true");
        }
        Ok(self.execute(call).await?.value)
    }

    /// Reads every stored version of a job, newest first (`GET /v1/job/:id/versions`).
    pub async fn job_versions(
        &self,
        job_id: &str,
        with_diffs: bool,
        options: QueryOptions,
    ) -> Result<Response<JobVersionsResponse>, Error> {
        let mut call = Call::get(
            "/v1/job/:id/versions",
            &["job", job_id, "versions"],
            options,
        );
        if with_diffs {
            call = call.param("diffs", "true");
        }
        self.execute(call).await
    }

    /// Lists a job's allocations (`GET /v1/job/:id/allocations`). With `all`, allocations of an
    /// earlier job with the same ID are included. An unknown job gives an empty list.
    ///
    /// The index of this endpoint moves on any allocation change in the cluster, so a
    /// blocking query on it also returns when nothing of this job changed.
    pub async fn job_allocations(
        &self,
        job_id: &str,
        all: bool,
        options: QueryOptions,
    ) -> Result<Response<Vec<AllocListStub>>, Error> {
        let mut call = Call::get(
            "/v1/job/:id/allocations",
            &["job", job_id, "allocations"],
            options,
        );
        if all {
            call = call.param("all", "true");
        }
        self.execute(call).await
    }

    /// Lists a job's deployments (`GET /v1/job/:id/deployments`).
    pub async fn job_deployments(
        &self,
        job_id: &str,
        options: QueryOptions,
    ) -> Result<Response<Vec<Deployment>>, Error> {
        self.execute(Call::get(
            "/v1/job/:id/deployments",
            &["job", job_id, "deployments"],
            options,
        ))
        .await
    }

    /// Reads a job's latest deployment (`GET /v1/job/:id/deployment`). It is `None` when the
    /// job has none, which Nomad sends as the body `null`.
    pub async fn latest_deployment(
        &self,
        job_id: &str,
        options: QueryOptions,
    ) -> Result<Response<Option<Deployment>>, Error> {
        self.execute(Call::get(
            "/v1/job/:id/deployment",
            &["job", job_id, "deployment"],
            options,
        ))
        .await
    }

    /// Reads the scale status of a job's groups (`GET /v1/job/:id/scale`).
    pub async fn job_scale_status(
        &self,
        job_id: &str,
        options: QueryOptions,
    ) -> Result<Response<JobScaleStatus>, Error> {
        self.execute(Call::get(
            "/v1/job/:id/scale",
            &["job", job_id, "scale"],
            options,
        ))
        .await
    }

    /// Sets a group's count (`POST /v1/job/:id/scale`). During an active deployment Nomad
    /// rejects this with [`Error::DeploymentActive`]. A non-zero `JobModifyIndex` in the
    /// request makes the write conditional, failing with [`Error::Conflict`].
    pub async fn scale_job(
        &self,
        job_id: &str,
        request: &ScalingRequest,
    ) -> Result<JobRegisterResponse, Error> {
        let call = Call::write(
            Method::POST,
            "/v1/job/:id/scale",
            &["job", job_id, "scale"],
            Some(request),
        )?;
        Ok(self.execute(call).await?.value)
    }

    /// Reads a job's allocation counts per group (`GET /v1/job/:id/summary`).
    pub async fn job_summary(
        &self,
        job_id: &str,
        options: QueryOptions,
    ) -> Result<Response<JobSummary>, Error> {
        self.execute(Call::get(
            "/v1/job/:id/summary",
            &["job", job_id, "summary"],
            options,
        ))
        .await
    }

    /// Lists a job's evaluations (`GET /v1/job/:id/evaluations`).
    pub async fn job_evaluations(
        &self,
        job_id: &str,
        options: QueryOptions,
    ) -> Result<Response<Vec<Evaluation>>, Error> {
        self.execute(Call::get(
            "/v1/job/:id/evaluations",
            &["job", job_id, "evaluations"],
            options,
        ))
        .await
    }

    /// Dispatches a parameterized job (`POST /v1/job/:id/dispatch`).
    pub async fn dispatch_job(
        &self,
        job_id: &str,
        request: &JobDispatchRequest,
    ) -> Result<JobDispatchResponse, Error> {
        let call = Call::write(
            Method::POST,
            "/v1/job/:id/dispatch",
            &["job", job_id, "dispatch"],
            Some(request),
        )?;
        Ok(self.execute(call).await?.value)
    }

    // Allocations.

    /// Lists allocations (`GET /v1/allocations`), optionally by ID prefix.
    pub async fn list_allocations(
        &self,
        prefix: Option<&str>,
        options: QueryOptions,
    ) -> Result<Response<Vec<AllocListStub>>, Error> {
        let mut call = Call::get("/v1/allocations", &["allocations"], options);
        if let Some(prefix) = prefix {
            call = call.param("prefix", prefix);
        }
        self.execute(call).await
    }

    /// Lists allocations without their task states (`GET /v1/allocations?task_states=false`),
    /// which makes each stub several times smaller, and keeps only the fields of
    /// [`AllocBrief`].
    pub async fn list_allocations_brief(
        &self,
        options: QueryOptions,
    ) -> Result<Response<Vec<AllocBrief>>, Error> {
        self.list_allocations_as(options).await
    }

    /// Lists allocations without their task states into any type that decodes from a JSON
    /// list of allocation stubs, such as a map built while the list is decoded, so that the
    /// whole list never exists as values at once.
    pub async fn list_allocations_as<T: DeserializeOwned>(
        &self,
        options: QueryOptions,
    ) -> Result<Response<T>, Error> {
        self.execute(allocations_page(options, None, None)).await
    }

    /// Lists every allocation without task states, `per_page` stubs per request, decoding
    /// each page into `T` and folding it into the first with `merge`.
    ///
    /// Only the first request blocks, on `options`. The following pages are read at once
    /// with `next_token`. The returned metadata is the first page's, so an allocation that
    /// changed while later pages were read moves the index past it, and the next blocking
    /// read returns at once. A Nomad without pagination sends no `X-Nomad-NextToken` and
    /// the first page is the whole list. Memory per request is bounded by `per_page`.
    pub async fn list_allocations_paged<T: DeserializeOwned>(
        &self,
        options: QueryOptions,
        per_page: u32,
        mut merge: impl FnMut(&mut T, T),
    ) -> Result<Response<T>, Error> {
        let first = self
            .execute::<T>(allocations_page(options, Some(per_page), None))
            .await?;
        let mut value = first.value;
        let mut next = first.next_token;

        while let Some(token) = next {
            let page = self
                .execute::<T>(allocations_page(
                    QueryOptions::immediate(),
                    Some(per_page),
                    Some(token.clone()),
                ))
                .await?;
            if page.next_token.as_deref() == Some(token.as_str()) {
                let message = format!(
                    "the page at next_token {token:?} names itself as the next page, so the \
                     list would never end"
                );
                return Err(Error::Decode {
                    path: "/v1/allocations".to_owned(),
                    source: serde::de::Error::custom(message),
                });
            }
            merge(&mut value, page.value);
            next = page.next_token;
        }

        Ok(Response {
            value,
            meta: first.meta,
            next_token: None,
        })
    }

    /// Reads an allocation (`GET /v1/allocation/:id`).
    pub async fn read_allocation(
        &self,
        alloc_id: &str,
        options: QueryOptions,
    ) -> Result<Response<Allocation>, Error> {
        self.execute(Call::get(
            "/v1/allocation/:id",
            &["allocation", alloc_id],
            options,
        ))
        .await
    }

    /// Stops an allocation so the scheduler replaces it (`POST /v1/allocation/:id/stop`).
    pub async fn stop_allocation(&self, alloc_id: &str) -> Result<AllocStopResponse, Error> {
        let call = Call::write(
            Method::POST,
            "/v1/allocation/:id/stop",
            &["allocation", alloc_id, "stop"],
            None::<&()>,
        )?;
        Ok(self.execute(call).await?.value)
    }

    // Nodes.

    /// Lists client nodes (`GET /v1/nodes`), optionally by ID prefix. Stubs carry no `Meta`.
    pub async fn list_nodes(
        &self,
        prefix: Option<&str>,
        options: QueryOptions,
    ) -> Result<Response<Vec<NodeListStub>>, Error> {
        let mut call = Call::get("/v1/nodes", &["nodes"], options);
        if let Some(prefix) = prefix {
            call = call.param("prefix", prefix);
        }
        self.execute(call).await
    }

    /// Reads a client node with its `Meta` and resources (`GET /v1/node/:id`).
    pub async fn read_node(
        &self,
        node_id: &str,
        options: QueryOptions,
    ) -> Result<Response<Node>, Error> {
        self.execute(Call::get("/v1/node/:id", &["node", node_id], options))
            .await
    }

    /// Starts or cancels a drain (`POST /v1/node/:id/drain`). Nomad reports an unknown node
    /// here as HTTP 500, so it arrives as [`Error::Server`], not `NotFound`.
    pub async fn drain_node(
        &self,
        node_id: &str,
        request: &NodeDrainRequest,
    ) -> Result<NodeUpdateResponse, Error> {
        let call = Call::write(
            Method::POST,
            "/v1/node/:id/drain",
            &["node", node_id, "drain"],
            Some(request),
        )?;
        Ok(self.execute(call).await?.value)
    }

    /// Sets whether the scheduler may place work on a node (`POST /v1/node/:id/eligibility`).
    pub async fn set_node_eligibility(
        &self,
        node_id: &str,
        eligibility: SchedulingEligibility,
    ) -> Result<NodeUpdateResponse, Error> {
        let request = NodeEligibilityRequest { eligibility };
        let call = Call::write(
            Method::POST,
            "/v1/node/:id/eligibility",
            &["node", node_id, "eligibility"],
            Some(&request),
        )?;
        Ok(self.execute(call).await?.value)
    }

    // Deployments.

    /// Lists deployments (`GET /v1/deployments`).
    pub async fn list_deployments(
        &self,
        options: QueryOptions,
    ) -> Result<Response<Vec<Deployment>>, Error> {
        self.execute(Call::get("/v1/deployments", &["deployments"], options))
            .await
    }

    /// Reads a deployment (`GET /v1/deployment/:id`).
    pub async fn read_deployment(
        &self,
        deployment_id: &str,
        options: QueryOptions,
    ) -> Result<Response<Deployment>, Error> {
        self.execute(Call::get(
            "/v1/deployment/:id",
            &["deployment", deployment_id],
            options,
        ))
        .await
    }

    /// Lists a deployment's allocations (`GET /v1/deployment/allocations/:id`).
    pub async fn deployment_allocations(
        &self,
        deployment_id: &str,
        options: QueryOptions,
    ) -> Result<Response<Vec<AllocListStub>>, Error> {
        self.execute(Call::get(
            "/v1/deployment/allocations/:id",
            &["deployment", "allocations", deployment_id],
            options,
        ))
        .await
    }

    /// Promotes a deployment's canaries (`POST /v1/deployment/promote/:id`): every group when
    /// `groups` is `None`, else the named ones.
    pub async fn promote_deployment(
        &self,
        deployment_id: &str,
        groups: Option<Vec<String>>,
    ) -> Result<DeploymentUpdateResponse, Error> {
        let request = DeploymentPromoteRequest {
            deployment_id: deployment_id.to_owned(),
            all: groups.is_none(),
            groups,
        };
        let call = Call::write(
            Method::POST,
            "/v1/deployment/promote/:id",
            &["deployment", "promote", deployment_id],
            Some(&request),
        )?;
        Ok(self.execute(call).await?.value)
    }

    /// Marks a deployment failed (`POST /v1/deployment/fail/:id`), which rolls back when the
    /// group has `AutoRevert`.
    pub async fn fail_deployment(
        &self,
        deployment_id: &str,
    ) -> Result<DeploymentUpdateResponse, Error> {
        let request = DeploymentFailRequest {
            deployment_id: deployment_id.to_owned(),
        };
        let call = Call::write(
            Method::POST,
            "/v1/deployment/fail/:id",
            &["deployment", "fail", deployment_id],
            Some(&request),
        )?;
        Ok(self.execute(call).await?.value)
    }

    /// Pauses (`pause: true`) or resumes a deployment (`POST /v1/deployment/pause/:id`).
    pub async fn pause_deployment(
        &self,
        deployment_id: &str,
        pause: bool,
    ) -> Result<DeploymentUpdateResponse, Error> {
        let request = DeploymentPauseRequest {
            deployment_id: deployment_id.to_owned(),
            pause,
        };
        let call = Call::write(
            Method::POST,
            "/v1/deployment/pause/:id",
            &["deployment", "pause", deployment_id],
            Some(&request),
        )?;
        Ok(self.execute(call).await?.value)
    }

    /// Sets the health of allocations by hand (`POST /v1/deployment/allocation-health/:id`).
    pub async fn set_allocation_health(
        &self,
        deployment_id: &str,
        healthy: Vec<String>,
        unhealthy: Vec<String>,
    ) -> Result<DeploymentUpdateResponse, Error> {
        let request = DeploymentAllocHealthRequest {
            deployment_id: deployment_id.to_owned(),
            healthy_allocation_ids: Some(healthy),
            unhealthy_allocation_ids: Some(unhealthy),
        };
        let call = Call::write(
            Method::POST,
            "/v1/deployment/allocation-health/:id",
            &["deployment", "allocation-health", deployment_id],
            Some(&request),
        )?;
        Ok(self.execute(call).await?.value)
    }

    // Evaluations.

    /// Reads an evaluation (`GET /v1/evaluation/:id`).
    pub async fn read_evaluation(
        &self,
        eval_id: &str,
        options: QueryOptions,
    ) -> Result<Response<Evaluation>, Error> {
        self.execute(Call::get(
            "/v1/evaluation/:id",
            &["evaluation", eval_id],
            options,
        ))
        .await
    }
}

/// Builds one read of `GET /v1/allocations?task_states=false`, or of one page of it.
fn allocations_page(
    options: QueryOptions,
    per_page: Option<u32>,
    next_token: Option<String>,
) -> Call {
    let mut call =
        Call::get("/v1/allocations", &["allocations"], options).param("task_states", "false");
    if let Some(per_page) = per_page {
        call = call.param("per_page", per_page.to_string());
    }
    if let Some(token) = next_token {
        call = call.param("next_token", token);
    }
    call
}
