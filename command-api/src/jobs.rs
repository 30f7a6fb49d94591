//! Scheduled jobs registered by modules: background work that runs wherever the command API runs
//! and acts through the writer, like a client would (a module's sweep of what timed out, a periodic cleanup).
//!
//! A module registers a job on the [`App`] with [`JobsExt::add_job`], capturing its own
//! configuration in the closure; the binary takes the registered [`Jobs`] and starts each with
//! what the process has ([`JobContext`]). A job decides for itself how it is led across replicas
//! (`questlog_store::leader`), and returns when the shutdown token fires.

use std::future::Future;
use std::pin::Pin;

use questlog_domain::App;
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::writer::{Clock, WriterHandle};

/// What a running job gets from the process.
#[derive(Clone)]
pub struct JobContext {
    /// For the job's own connections (an advisory lock held on one, for leadership).
    pub database_url: String,
    /// The process's pool, for the job's queries.
    pub pool: PgPool,
    /// The writer every command goes through.
    pub writer: WriterHandle,
    /// The writer's clock (tests replace it to simulate minutes).
    pub clock: Clock,
    /// Fires when the process stops; the job returns then.
    pub shutdown: CancellationToken,
}

type JobFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type JobFn = Box<dyn Fn(JobContext) -> JobFuture + Send + Sync>;

struct Job {
    name: &'static str,
    run: JobFn,
}

/// The jobs the running modules registered (an [`App`] part).
#[derive(Default)]
pub struct Jobs {
    jobs: Vec<Job>,
}

impl Jobs {
    /// The jobs' names, in registration order.
    pub fn names(&self) -> Vec<&'static str> {
        self.jobs.iter().map(|j| j.name).collect()
    }

    /// Starts every job on the runtime.
    pub fn spawn(&self, context: &JobContext) -> Vec<JoinHandle<()>> {
        self.jobs
            .iter()
            .map(|job| {
                tracing::debug!(job = job.name, "starting a scheduled job");
                tokio::spawn((job.run)(context.clone()))
            })
            .collect()
    }
}

/// Registering jobs on an [`App`].
pub trait JobsExt {
    /// Registers a job named `name`: `run` is called once per process that runs the command API
    /// and runs until the context's shutdown token fires.
    ///
    /// # Panics
    /// When a job of that name is registered already.
    fn add_job<F, Fut>(&mut self, name: &'static str, run: F) -> &mut Self
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static;
}

impl JobsExt for App {
    fn add_job<F, Fut>(&mut self, name: &'static str, run: F) -> &mut Self
    where
        F: Fn(JobContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let jobs = self.part_mut::<Jobs>();
        assert!(
            jobs.jobs.iter().all(|j| j.name != name),
            "job {name} is registered twice"
        );
        jobs.jobs.push(Job {
            name,
            run: Box::new(move |context| Box::pin(run(context))),
        });
        self
    }
}
