//! The gRPC API end to end: real binary, real model, real sled, loopback gRPC, simulated provider.

mod common;

use cachet::operate::with_token;
use cachet::proto::{
    invalidate_request, CacheControl, CacheStatus, InvalidateRequest, SamplingParams, ScopeSelector,
};
use cachet::simulator::Behaviour;
use common::*;
use tonic::Code;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn miss_then_exact_hit_saves_the_tokens_of_the_first_call() {
    let Fixture {
        upstream, sidecar, ..
    } = &Fixture::start().await;
    let mut client = sidecar.client().await;

    let first = client
        .complete(question("acme", "How do I reset my password?"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.status(), CacheStatus::Miss);
    assert_eq!(upstream.calls(), 1);
    let usage = first.usage.unwrap();
    assert!(usage.total_tokens > 0);
    assert_eq!(
        usage.total_tokens,
        usage.prompt_tokens + usage.completion_tokens
    );
    assert_eq!(first.tokens_saved, 0);
    assert!(!first.entry_id.is_empty());
    assert_eq!(first.model, "gpt-test");

    let again = client
        .complete(question("acme", "  how do I reset my   PASSWORD? "))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.status(), CacheStatus::HitExact);
    assert_eq!(again.answer, first.answer);
    assert_eq!(again.entry_id, first.entry_id);
    assert_eq!(again.similarity, 1.0);
    assert_eq!(again.tokens_saved, usage.total_tokens);
    assert_eq!(upstream.calls(), 1, "a hit must not reach the upstream");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn paraphrase_hits_and_unrelated_question_misses() {
    let Fixture {
        upstream, sidecar, ..
    } = &Fixture::start().await;
    let mut client = sidecar.client().await;

    let first = client
        .complete(question("acme", "How do I reset my password?"))
        .await
        .unwrap()
        .into_inner();
    let paraphrase = client
        .complete(question("acme", "How can I reset my password?"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(paraphrase.status(), CacheStatus::HitSemantic);
    assert_eq!(paraphrase.answer, first.answer);
    assert!(paraphrase.similarity >= 0.9 && paraphrase.similarity < 1.0);
    assert_eq!(paraphrase.tokens_saved, first.usage.unwrap().total_tokens);

    let unrelated = client
        .complete(question("acme", "What is the capital of Australia?"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unrelated.status(), CacheStatus::Miss);
    assert_ne!(unrelated.answer, first.answer);
    assert_eq!(upstream.calls(), 2);

    // A changed number is a different question, however close the embeddings.
    client
        .complete(question("acme", "Where is my order 48213?"))
        .await
        .unwrap();
    let other_order = client
        .complete(question("acme", "Where is my order 48231?"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(other_order.status(), CacheStatus::Miss);
    assert!(other_order.answer.contains("48231"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_never_cross_tenant_model_system_prompt_or_parameters() {
    let Fixture {
        upstream, sidecar, ..
    } = &Fixture::start().await;
    let mut client = sidecar.client().await;
    let text = "How do I reset my password?";
    let base = question("acme", text);
    client.complete(base.clone()).await.unwrap();

    let other_tenant = question("globex", text);
    let other_model = chat("acme", "gpt-other", &base.messages);
    let other_system = chat(
        "acme",
        "gpt-test",
        &[msg("system", "Answer in French."), msg("user", text)],
    );
    let mut other_params = base.clone();
    other_params.params = Some(SamplingParams {
        temperature: Some(1.2),
        ..Default::default()
    });
    for (what, request) in [
        ("tenant", other_tenant),
        ("model", other_model),
        ("system prompt", other_system),
        ("sampling parameters", other_params),
    ] {
        // Lookup first: it must not see the entry at all, not even as a semantic neighbour.
        let seen = client
            .lookup(lookup_of(&request))
            .await
            .unwrap()
            .into_inner();
        assert!(!seen.hit, "{what}: lookup crossed the boundary");
        let answered = client.complete(request).await.unwrap().into_inner();
        assert_eq!(answered.status(), CacheStatus::Miss, "{what}");
    }
    assert_eq!(upstream.calls(), 5);
    // And each of them is now cached in its own scope.
    let again = client
        .complete(question("globex", text))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.status(), CacheStatus::HitExact);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn earlier_turns_are_compared_not_just_the_last_message() {
    let Fixture {
        upstream, sidecar, ..
    } = &Fixture::start().await;
    let mut client = sidecar.client().await;
    let conversation = |subject: &str, reply: &str| {
        chat(
            "acme",
            "gpt-test",
            &[
                msg("system", "You are a support agent."),
                msg("user", subject),
                msg("assistant", reply),
                msg("user", "Yes, cancel it."),
            ],
        )
    };
    let streaming = conversation(
        "I pay for the premium streaming plan.",
        "I can help with your streaming plan.",
    );
    client.complete(streaming.clone()).await.unwrap();

    let gym = conversation(
        "I have a gym membership with you.",
        "I can help with your gym membership.",
    );
    assert_eq!(
        client.complete(gym).await.unwrap().into_inner().status(),
        CacheStatus::Miss,
        "same last message after another conversation"
    );
    let no_context = chat(
        "acme",
        "gpt-test",
        &[
            msg("system", "You are a support agent."),
            msg("user", "Yes, cancel it."),
        ],
    );
    assert_eq!(
        client
            .complete(no_context)
            .await
            .unwrap()
            .into_inner()
            .status(),
        CacheStatus::Miss,
        "same last message with no conversation before it"
    );
    let reworded = conversation(
        "I'm paying for the premium streaming plan.",
        "I can help with your streaming plan.",
    );
    let hit = client.complete(reworded).await.unwrap().into_inner();
    assert_eq!(
        hit.status(),
        CacheStatus::HitSemantic,
        "same conversation, reworded"
    );
    assert_eq!(upstream.calls(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lookup_and_store_for_clients_that_call_their_own_model() {
    let Fixture {
        upstream, sidecar, ..
    } = &Fixture::start().await;
    let mut client = sidecar.client().await;
    let request = question("acme", "Which plans include priority support?");

    let before = client
        .lookup(lookup_of(&request))
        .await
        .unwrap()
        .into_inner();
    assert!(!before.hit);
    assert_eq!(before.status(), CacheStatus::Miss);

    let stored = client
        .store(store_of(
            &request,
            "The Business and Enterprise plans.",
            120,
        ))
        .await
        .unwrap()
        .into_inner();
    assert!(!stored.replaced);

    let exact = client
        .lookup(lookup_of(&request))
        .await
        .unwrap()
        .into_inner();
    assert!(exact.hit);
    assert_eq!(exact.answer, "The Business and Enterprise plans.");
    assert_eq!(exact.entry_id, stored.entry_id);
    assert_eq!(exact.tokens_saved, 120);

    let paraphrase = question("acme", "Which plans come with priority support?");
    let near = client
        .lookup(lookup_of(&paraphrase))
        .await
        .unwrap()
        .into_inner();
    assert!(near.hit);
    assert_eq!(near.status(), CacheStatus::HitSemantic);

    let again = client
        .store(store_of(&request, "Only the Enterprise plan.", 80))
        .await
        .unwrap()
        .into_inner();
    assert!(
        again.replaced,
        "the same chat stored twice replaces the first answer"
    );
    let now = client
        .lookup(lookup_of(&paraphrase))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        now.answer, "Only the Enterprise plan.",
        "the replaced answer is no longer served"
    );
    assert_eq!(
        upstream.calls(),
        0,
        "Lookup and Store never call the upstream"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidate_needs_the_admin_token_and_stays_within_the_tenant() {
    let Fixture {
        upstream, sidecar, ..
    } = &Fixture::start().await;
    let mut client = sidecar.client().await;
    let q = |tenant: &str, text: &str| question(tenant, text);
    let first = client
        .complete(q("acme", "What are your opening hours?"))
        .await
        .unwrap()
        .into_inner();
    client
        .complete(q("acme", "Where are you located?"))
        .await
        .unwrap();
    client
        .complete(q("globex", "What are your opening hours?"))
        .await
        .unwrap();

    let by_id = |tenant: &str, id: &str| InvalidateRequest {
        tenant: tenant.into(),
        target: Some(invalidate_request::Target::EntryId(id.into())),
    };

    let unauthenticated = client
        .invalidate(by_id("acme", &first.entry_id))
        .await
        .unwrap_err();
    assert_eq!(unauthenticated.code(), Code::Unauthenticated);
    let wrong = client
        .invalidate(with_token(by_id("acme", &first.entry_id), "guess"))
        .await
        .unwrap_err();
    assert_eq!(wrong.code(), Code::Unauthenticated);
    // Another tenant cannot remove acme's entry, nor learn that it exists.
    let foreign = client
        .invalidate(with_token(by_id("globex", &first.entry_id), ADMIN_TOKEN))
        .await
        .unwrap_err();
    assert_eq!(foreign.code(), Code::NotFound);
    let still = client
        .complete(q("acme", "What are your opening hours?"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        still.status(),
        CacheStatus::HitExact,
        "refused invalidations change nothing"
    );

    let removed = client
        .invalidate(with_token(by_id("acme", &first.entry_id), ADMIN_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.removed, 1);
    let gone = client
        .complete(q("acme", "When are you open?"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        gone.status(),
        CacheStatus::Miss,
        "neither exact nor semantic after invalidation"
    );

    let scope = InvalidateRequest {
        tenant: "acme".into(),
        target: Some(invalidate_request::Target::Scope(ScopeSelector {
            model: "gpt-test".into(),
            messages: vec![msg("system", "Answer briefly.")],
            params: None,
        })),
    };
    let removed = client
        .invalidate(with_token(scope, ADMIN_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.removed, 2, "the scope held two live entries");

    let tenant = InvalidateRequest {
        tenant: "globex".into(),
        target: Some(invalidate_request::Target::WholeTenant(true)),
    };
    let removed = client
        .invalidate(with_token(tenant, ADMIN_TOKEN))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(removed.removed, 1);
    let calls = upstream.calls();
    let after = client
        .complete(q("globex", "What are your opening hours?"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.status(), CacheStatus::Miss);
    assert_eq!(upstream.calls(), calls + 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entries_expire_after_their_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = simulator().await;
    let sidecar = Sidecar::start_with(
        dir.path(),
        &upstream.base_url(),
        "[tenants.shortlived]\ndefault_ttl_secs = 1\n",
    )
    .await;
    let mut client = sidecar.client().await;

    let mut request = question("acme", "What is today's special offer?");
    request.cache_control = Some(CacheControl {
        ttl_seconds: 1,
        ..Default::default()
    });
    client.complete(request.clone()).await.unwrap();
    let tenant_default = question("shortlived", "What is today's special offer?");
    client.complete(tenant_default.clone()).await.unwrap();
    let forever = question("acme", "What is your company's founding year?");
    client.complete(forever.clone()).await.unwrap();
    assert_eq!(
        client
            .complete(request.clone())
            .await
            .unwrap()
            .into_inner()
            .status(),
        CacheStatus::HitExact
    );

    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;
    for expired in [request, tenant_default] {
        let lookup = client
            .lookup(lookup_of(&expired))
            .await
            .unwrap()
            .into_inner();
        assert!(!lookup.hit, "served after its TTL: {:?}", expired.tenant);
        let paraphrase = client
            .lookup(lookup_of(&question(
                &expired.tenant,
                "What's today's special offer?",
            )))
            .await
            .unwrap()
            .into_inner();
        assert!(!paraphrase.hit, "expired entry served as a semantic hit");
    }
    assert!(
        client
            .lookup(lookup_of(&forever))
            .await
            .unwrap()
            .into_inner()
            .hit
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_with_invalid_argument_and_stores_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = simulator().await;
    let sidecar = Sidecar::start_with(
        dir.path(),
        &upstream.base_url(),
        "[limits]\nmax_prompt_chars = 2000\n[server]\nmax_request_bytes = 65536\n",
    )
    .await;
    let mut client = sidecar.client().await;

    let mut no_messages = question("acme", "x");
    no_messages.messages.clear();
    let empty_last = chat("acme", "gpt-test", &[msg("user", "   ")]);
    let only_system = chat("acme", "gpt-test", &[msg("system", "Answer briefly.")]);
    let oversized = question("acme", &"very long prompt ".repeat(200));
    let bad_role = chat("acme", "gpt-test", &[msg("wizard", "hello")]);
    let no_model = chat("acme", "", &[msg("user", "hello")]);
    let no_tenant = question("", "hello");
    let mut loose = question("acme", "hello");
    loose.cache_control = Some(CacheControl {
        min_similarity: Some(1.5),
        ..Default::default()
    });
    let cases = [
        ("no messages", no_messages, "messages is empty"),
        ("empty last message", empty_last, "empty"),
        ("only a system message", only_system, "only system messages"),
        (
            "over the prompt limit",
            oversized,
            "limits.max_prompt_chars",
        ),
        ("unknown role", bad_role, "wizard"),
        ("no model", no_model, "model is required"),
        ("no tenant", no_tenant, "tenant is required"),
        ("invalid min_similarity", loose, "min_similarity"),
    ];
    for (what, request, hint) in cases {
        let err = client.complete(request.clone()).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{what}: {err:?}");
        assert!(
            err.message().contains(hint),
            "{what}: message {:?} lacks {hint:?}",
            err.message()
        );
        let err = client
            .store(store_of(&request, "an answer", 10))
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{what} (Store)");
        let err = client.lookup(lookup_of(&request)).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{what} (Lookup)");
    }
    let huge = client
        .complete(question("acme", &"x".repeat(100_000)))
        .await
        .unwrap_err();
    assert_eq!(
        huge.code(),
        Code::OutOfRange,
        "over server.max_request_bytes: {huge:?}"
    );

    let empty_answer = client
        .store(store_of(&question("acme", "hello"), " ", 1))
        .await
        .unwrap_err();
    assert_eq!(empty_answer.code(), Code::InvalidArgument);

    let unknown_tenant = client
        .complete(question("initech", "hello"))
        .await
        .unwrap_err();
    assert_eq!(unknown_tenant.code(), Code::PermissionDenied);
    assert!(
        unknown_tenant.message().contains("[tenants.initech]"),
        "{}",
        unknown_tenant.message()
    );

    assert_eq!(
        upstream.calls(),
        0,
        "refused requests never reach the upstream"
    );
    let probe = client
        .lookup(lookup_of(&question("acme", "hello")))
        .await
        .unwrap()
        .into_inner();
    assert!(!probe.hit, "nothing was stored by refused requests");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_fields_are_refused() {
    use cachet::proto::{LookupResponse, Message};

    /// A LookupRequest from a future contract, with a field this server does not know.
    #[derive(Clone, PartialEq, prost::Message)]
    struct FutureLookupRequest {
        #[prost(string, tag = "1")]
        tenant: String,
        #[prost(string, tag = "2")]
        model: String,
        #[prost(message, repeated, tag = "3")]
        messages: Vec<Message>,
        #[prost(bool, tag = "99")]
        strict_matching: bool,
    }

    let dir = tempfile::tempdir().unwrap();
    let upstream = simulator().await;
    let sidecar = Sidecar::start(dir.path(), &upstream.base_url()).await;
    let mut grpc = tonic::client::Grpc::new(sidecar.channel().await);
    let send = |strict: bool| FutureLookupRequest {
        tenant: "acme".into(),
        model: "gpt-test".into(),
        messages: vec![msg("user", "hello")],
        strict_matching: strict,
    };
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/cachet.v1.Cache/Lookup");
    grpc.ready().await.unwrap();
    let known_only: Result<tonic::Response<LookupResponse>, _> = grpc
        .unary(
            tonic::Request::new(send(false)),
            path.clone(),
            tonic_prost::ProstCodec::default(),
        )
        .await;
    assert!(
        known_only.is_ok(),
        "a message with known fields only is accepted"
    );
    grpc.ready().await.unwrap();
    let unknown: Result<tonic::Response<LookupResponse>, _> = grpc
        .unary(
            tonic::Request::new(send(true)),
            path,
            tonic_prost::ProstCodec::default(),
        )
        .await;
    let err = unknown.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("does not know"), "{}", err.message());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_failures_map_to_clear_errors_and_store_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = simulator().await;
    let sidecar = Sidecar::start(dir.path(), &upstream.base_url()).await;
    let mut client = sidecar.client().await;
    let request = question("acme", "Summarise our returns process.");

    let cases = [
        (
            Behaviour::Stall(std::time::Duration::from_secs(4)),
            Code::DeadlineExceeded,
            "did not answer within",
        ),
        (Behaviour::Fail(500), Code::Unavailable, "HTTP 500"),
        (Behaviour::Fail(429), Code::Unavailable, "HTTP 429"),
        (Behaviour::Fail(401), Code::FailedPrecondition, "HTTP 401"),
        (
            Behaviour::Garbage,
            Code::Unavailable,
            "not a chat completion",
        ),
    ];
    for (behaviour, code, hint) in cases {
        upstream.set_behaviour(behaviour.clone());
        let err = client.complete(request.clone()).await.unwrap_err();
        assert_eq!(err.code(), code, "{behaviour:?}: {err:?}");
        assert!(
            err.message().contains(hint),
            "{behaviour:?}: {:?} lacks {hint:?}",
            err.message()
        );
        let lookup = client
            .lookup(lookup_of(&request))
            .await
            .unwrap()
            .into_inner();
        assert!(!lookup.hit, "{behaviour:?}: a failed call stored something");
    }

    upstream.set_behaviour(Behaviour::Answer);
    let ok = client.complete(request.clone()).await.unwrap().into_inner();
    assert_eq!(
        ok.status(),
        CacheStatus::Miss,
        "the sidecar recovers once the upstream does"
    );

    drop(upstream);
    let unreachable = client
        .complete(question("acme", "Something nobody asked before?"))
        .await
        .unwrap_err();
    assert_eq!(unreachable.code(), Code::Unavailable);
    assert!(
        unreachable.message().contains("unreachable"),
        "{}",
        unreachable.message()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cache_control_bypass_refresh_no_store_and_min_similarity() {
    let Fixture {
        upstream, sidecar, ..
    } = &Fixture::start().await;
    let mut client = sidecar.client().await;
    let with = |text: &str, control: CacheControl| {
        let mut r = question("acme", text);
        r.cache_control = Some(control);
        r
    };

    let no_store = with(
        "Is there a student discount?",
        CacheControl {
            no_store: true,
            ..Default::default()
        },
    );
    let answered = client
        .complete(no_store.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(answered.status(), CacheStatus::Miss);
    assert!(answered.entry_id.is_empty());
    assert!(
        !client
            .lookup(lookup_of(&no_store))
            .await
            .unwrap()
            .into_inner()
            .hit
    );

    let plain = question("acme", "Is there a student discount?");
    client.complete(plain.clone()).await.unwrap();
    let bypass = with(
        "Is there a student discount?",
        CacheControl {
            bypass: true,
            ..Default::default()
        },
    );
    let bypassed = client.complete(bypass).await.unwrap().into_inner();
    assert_eq!(bypassed.status(), CacheStatus::Bypass);
    assert_eq!(upstream.calls(), 3);

    let refresh = with(
        "Is there a student discount?",
        CacheControl {
            refresh: true,
            ..Default::default()
        },
    );
    let refreshed = client.complete(refresh).await.unwrap().into_inner();
    assert_eq!(refreshed.status(), CacheStatus::Miss);
    assert_eq!(upstream.calls(), 4);
    let served = client.complete(plain).await.unwrap().into_inner();
    assert_eq!(served.status(), CacheStatus::HitExact);
    assert_eq!(
        served.entry_id, refreshed.entry_id,
        "refresh replaced the entry"
    );

    // A stricter minimum refuses a paraphrase the default threshold would serve...
    let paraphrase = "Do you offer a student discount?";
    let default_hit = client
        .lookup(lookup_of(&question("acme", paraphrase)))
        .await
        .unwrap()
        .into_inner();
    assert!(
        default_hit.hit,
        "paraphrase similarity {}",
        default_hit.similarity
    );
    let strict = with(
        paraphrase,
        CacheControl {
            min_similarity: Some(0.999),
            ..Default::default()
        },
    );
    assert!(
        !client
            .lookup(lookup_of(&strict))
            .await
            .unwrap()
            .into_inner()
            .hit
    );
    // ...and a looser one cannot loosen the configured threshold.
    let unrelated = with(
        "Can I pay with a credit card?",
        CacheControl {
            min_similarity: Some(0.01),
            ..Default::default()
        },
    );
    assert!(
        !client
            .lookup(lookup_of(&unrelated))
            .await
            .unwrap()
            .into_inner()
            .hit
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn identical_concurrent_misses_call_the_upstream_once() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = cachet::simulator::Simulator::start(
        "127.0.0.1:0".parse().unwrap(),
        std::time::Duration::from_millis(300),
    )
    .await
    .unwrap();
    let sidecar = Sidecar::start(dir.path(), &upstream.base_url()).await;
    let client = sidecar.client().await;
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let mut client = client.clone();
            tokio::spawn(async move {
                client
                    .complete(question("acme", "What is the warranty period?"))
                    .await
            })
        })
        .collect();
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(call.await.unwrap().unwrap().into_inner().status());
    }
    assert_eq!(upstream.calls(), 1, "statuses {statuses:?}");
    assert_eq!(
        statuses.iter().filter(|s| **s == CacheStatus::Miss).count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn health_and_reflection_are_served() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    use tonic_reflection::pb::v1::ServerReflectionRequest;

    let dir = tempfile::tempdir().unwrap();
    let upstream = simulator().await;
    let sidecar = Sidecar::start(dir.path(), &upstream.base_url()).await;
    let mut health = HealthClient::new(sidecar.channel().await);
    for service in ["", "cachet.v1.Cache"] {
        let status = health
            .check(HealthCheckRequest {
                service: service.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .status();
        assert_eq!(
            status,
            tonic_health::pb::health_check_response::ServingStatus::Serving,
            "{service:?}"
        );
    }

    let mut reflection = ServerReflectionClient::new(sidecar.channel().await);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream = reflection
        .server_reflection_info(tokio_stream::iter([request]))
        .await
        .unwrap()
        .into_inner();
    let reply = stream.message().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = reply.message_response else {
        panic!("unexpected reflection reply");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"cachet.v1.Cache".to_string()), "{names:?}");
    assert!(
        names.contains(&"grpc.health.v1.Health".to_string()),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_concurrent_stores_all_complete() {
    let dir = tempfile::tempdir().unwrap();
    let upstream = simulator().await;
    let sidecar = Sidecar::start(dir.path(), &upstream.base_url()).await;
    let client = sidecar.client().await;
    let stores: Vec<_> = (0..64)
        .map(|i| {
            let mut client = client.clone();
            tokio::spawn(async move {
                let request = question("acme", &format!("What is the status of ticket {i}?"));
                client
                    .store(store_of(&request, &format!("ticket {i} is open"), 10))
                    .await
            })
        })
        .collect();
    let all = tokio::time::timeout(std::time::Duration::from_secs(60), async {
        for store in stores {
            store.await.unwrap().unwrap();
        }
    })
    .await;
    assert!(
        all.is_ok(),
        "concurrent stores did not all finish (a commit deadlock?)"
    );
    let mut client = sidecar.client().await;
    for i in [0, 31, 63] {
        let found = client
            .lookup(lookup_of(&question(
                "acme",
                &format!("What is the status of ticket {i}?"),
            )))
            .await
            .unwrap()
            .into_inner();
        assert_eq!(found.answer, format!("ticket {i} is open"));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_configured_upstream_model_is_asked_while_the_request_model_scopes() {
    let Fixture { sidecar, .. } =
        &Fixture::with_config("[upstream]\nmodel = \"served-model\"\n").await;
    let mut client = sidecar.client().await;
    let first = client
        .complete(question("acme", "What is a sidecar?"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        first.model, "served-model",
        "the simulator answers as the model it was asked for"
    );
    assert!(first.answer.contains("[simulated served-model]"));
    let other_model = chat(
        "acme",
        "gpt-other",
        &question("acme", "What is a sidecar?").messages,
    );
    let second = client.complete(other_model).await.unwrap().into_inner();
    assert_eq!(
        second.status(),
        CacheStatus::Miss,
        "the request's model still scopes the cache"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_entries_are_swept_without_a_lookup() {
    let Fixture { sidecar, .. } = &Fixture::with_config("[storage]\nsweep_every_secs = 1\n").await;
    let mut client = sidecar.client().await;
    for (text, ttl) in [
        ("Short-lived one?", 1),
        ("Short-lived two?", 1),
        ("Kept?", 0),
    ] {
        let mut store = store_of(&question("acme", text), "an answer", 10);
        store.cache_control = Some(CacheControl {
            ttl_seconds: ttl,
            ..Default::default()
        });
        client.store(store).await.unwrap();
    }
    let entries = || async { sidecar.stats().await.entries };
    assert_eq!(entries().await, 3);
    tokio::time::sleep(std::time::Duration::from_millis(2600)).await;
    assert_eq!(entries().await, 1, "the two expired entries were swept");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn compact_and_stats_from_the_command_line() {
    let Fixture { sidecar, .. } = &Fixture::start().await;
    let mut client = sidecar.client().await;
    let mut ids = Vec::new();
    for text in [
        "How do I pair my headphones?",
        "How do I reset my router?",
        "How do I update my phone?",
    ] {
        ids.push(
            client
                .complete(question("acme", text))
                .await
                .unwrap()
                .into_inner()
                .entry_id,
        );
    }
    let remove = as_admin(InvalidateRequest {
        tenant: "acme".into(),
        target: Some(invalidate_request::Target::EntryId(ids[0].clone())),
    });
    client.invalidate(remove).await.unwrap();

    let cli = |command: &str| {
        succeeded(
            std::process::Command::new(env!("CARGO_BIN_EXE_cachet"))
                .args([command, "--endpoint"])
                .arg(sidecar.admin_endpoint())
                .env("CACHET_ADMIN_TOKEN", ADMIN_TOKEN)
                .output()
                .unwrap(),
        )
    };
    assert_eq!(cli("compact"), "compacted: 1 tombstones dropped\n");
    let near = client
        .lookup(lookup_of(&question("acme", "How can I reset my router?")))
        .await
        .unwrap()
        .into_inner();
    assert!(near.hit, "live entries are still found after compaction");
    let gone = client
        .lookup(lookup_of(&question(
            "acme",
            "How can I pair my headphones?",
        )))
        .await
        .unwrap()
        .into_inner();
    assert!(!gone.hit);
    let stats = cli("stats");
    assert!(stats.starts_with("entries: 2\n"), "{stats}");
    assert!(stats.contains("acme"), "{stats}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_max_entries_the_least_recently_used_are_evicted() {
    let Fixture { sidecar, .. } =
        &Fixture::with_config("[storage]\nmax_entries = 10\nsweep_every_secs = 1\n").await;
    let mut client = sidecar.client().await;
    let texts: Vec<String> = (0..15)
        .map(|i| format!("What does error code E{i} mean in the billing service?"))
        .collect();
    let answer = |text: &str| format!("answer to {text}");
    let served_own = |found: cachet::proto::LookupResponse, text: &str| {
        found.hit && found.answer == answer(text)
    };
    for (i, text) in texts.iter().enumerate() {
        let request = question("acme", text);
        client
            .store(store_of(&request, &answer(text), 30))
            .await
            .unwrap();
        if i == 9 {
            // At the bound, nothing is evicted yet; the oldest entry is now in use, so it
            // must outlive younger ones nobody asked for.
            let oldest = lookup_of(&question("acme", &texts[0]));
            let used = client.lookup(oldest).await.unwrap().into_inner();
            assert!(served_own(used, &texts[0]));
        }
    }
    // Two sweeps later, the cache is back within its bound.
    tokio::time::sleep(std::time::Duration::from_millis(2500)).await;
    let entries = sidecar.stats().await.entries;
    assert!((9..=10).contains(&entries), "{entries} entries");

    let mut survivors = Vec::new();
    for (i, text) in texts.iter().enumerate() {
        let found = client
            .lookup(lookup_of(&question("acme", text)))
            .await
            .unwrap()
            .into_inner();
        if served_own(found, text) {
            survivors.push(i);
        }
    }
    assert_eq!(survivors.len() as u64, entries);
    assert_eq!(
        survivors[0], 0,
        "the entry in use was evicted: {survivors:?}"
    );
    // The rest is the newest, unbroken: eviction took the oldest unused ones.
    let first_young = survivors[1];
    assert!(first_young > 1, "nothing was evicted: {survivors:?}");
    assert_eq!(survivors[1..], (first_young..15).collect::<Vec<_>>()[..]);
}
