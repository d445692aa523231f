//! The server-rendered pages (the browser tests in tests/browser cover
//! hydration; these need no browser). The site's files are faked: the server
//! renders pages once `<site root>/pkg/taskwire.js` exists.

use app::{Task, TaskStatus};
use reqwest::StatusCode;
use reqwest::header::{ACCEPT, CONTENT_TYPE, LOCATION};
use serde_json::json;

use crate::helpers::*;

const HTML: &str = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8";

fn fake_site() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("pkg")).unwrap();
    std::fs::write(dir.path().join("pkg/taskwire.js"), "").unwrap();
    dir
}

fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
}

/// `GET path` as a browser asks for it: the page's status and HTML.
async fn browse(http: &reqwest::Client, server: &TestServer, path: &str) -> (StatusCode, String) {
    page(
        http.get(server.at(path))
            .header(ACCEPT, HTML)
            .send()
            .await
            .unwrap(),
    )
    .await
}

async fn page(res: reqwest::Response) -> (StatusCode, String) {
    let status = res.status();
    let ct = res.headers()[CONTENT_TYPE].to_str().unwrap().to_owned();
    assert!(ct.starts_with("text/html"), "{ct}");
    (status, res.text().await.unwrap())
}

#[tokio::test]
async fn no_js_form_lands_on_the_server_rendered_task_page() {
    let site = fake_site();
    let root = site.path().to_str().unwrap();
    let server = TestServer::start(&["--site-root", root]).await;
    let http = http();

    // The console lists the server's kinds in its form.
    let (status, html) = page(http.get(server.at("/")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    for kind in ["echo", "fail", "primes", "sha256", "sleep"] {
        assert!(
            html.contains(&format!(r#"<option value="{kind}""#)),
            "{kind} in {html}"
        );
    }
    assert!(html.contains(r#"<form id="submit" method="post" action="/tasks""#));
    assert!(
        html.contains(r#"<textarea id="input" name="input""#),
        "no-JS input editor"
    );

    // The form posts kind + raw JSON input: 303 to the task's page.
    let res = http
        .post(server.at("/tasks"))
        .header(ACCEPT, HTML)
        .form(&[
            ("kind", "echo"),
            ("input", r#"{"from":"a form"}"#),
            ("priority", "2"),
        ])
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    let location = res.headers()[LOCATION].to_str().unwrap().to_owned();
    let id = location
        .strip_prefix("/tasks/")
        .expect("task page")
        .to_owned();

    // The JSON API is unchanged on the same URL...
    let mut ws = server.client().await;
    let task: Task = http
        .get(server.at(&location))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(task.id.to_string(), id);
    assert_eq!(task.priority, 2);
    // It may finish between the GET and the subscribe: then the subscribe
    // ack holds the result and no push follows.
    let done = match task.status {
        TaskStatus::Succeeded => task,
        _ => match ws.subscribe(task.id).await.unwrap() {
            snap if snap.status.is_final() => snap,
            _ => result_of(&mut ws, task.id).await,
        },
    };
    assert_eq!(
        done.output,
        Some(app::Json::from(json!({"from": "a form"})))
    );

    // ...and a browser gets the page, rendered with the task's state.
    let (status, html) = browse(&http, &server, &location).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&format!(r#"data-task-id="{id}""#)), "{html}");
    assert!(html.contains(r#"data-status="succeeded""#), "{html}");
    assert!(
        html.contains("&quot;from&quot;: &quot;a form&quot;")
            || html.contains(r#""from": "a form""#),
        "{html}"
    );
    assert!(html.contains("priority 2"), "{html}");
}

#[tokio::test]
async fn unknown_task_pages_are_404_and_json_clients_keep_json() {
    let site = fake_site();
    let server = TestServer::start(&["--site-root", site.path().to_str().unwrap()]).await;
    let http = http();
    let unknown = "/tasks/01936c1e-0000-7000-8000-000000000000";
    let (status, html) = browse(&http, &server, unknown).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(html.contains("No such task"), "{html}");
    let (status, _) = browse(&http, &server, "/tasks/not-a-uuid").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // `*/*` (fetch, curl, socket.io clients' HTTP calls) is JSON.
    for accept in ["*/*", "application/json"] {
        let res = http
            .get(server.at(unknown))
            .header(ACCEPT, accept)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), StatusCode::NOT_FOUND);
        assert_eq!(error_code(res).await, app::ErrorCode::NotFound);
    }
    // The dashboard page renders (its data comes over the socket).
    let (status, html) = page(http.get(server.at("/dashboard")).send().await.unwrap()).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"<table id="workers""#), "{html}");
}

#[tokio::test]
async fn without_a_built_site_browsers_get_json_task_and_a_hint() {
    let empty = tempfile::tempdir().unwrap();
    let server = TestServer::start(&["--site-root", empty.path().to_str().unwrap()]).await;
    let http = http();
    let ws = server.client().await;
    let task = ws.submit(&spec("echo", json!(1))).await.unwrap();
    let res = http
        .get(server.at(&format!("/tasks/{}", task.id)))
        .header(ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Task>().await.unwrap().id, task.id);
    let res = http.get(server.at("/")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(res.text().await.unwrap().contains("cargo leptos build"));
}

const TOKEN: &str = "s3cret";

#[tokio::test]
async fn the_explorer_shows_every_clients_tasks_to_a_viewer_with_the_token() {
    let site = fake_site();
    let root = site.path().to_str().unwrap();
    let server = TestServer::start(&["--site-root", root, "--token", TOKEN]).await;
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(std::time::Duration::from_secs(20))
        .build()
        .unwrap();
    let res = http
        .post(server.at("/tasks"))
        .bearer_auth(TOKEN)
        .json(&json!({"kind": "echo", "input": {"x": 1}, "key": "explorer:1"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::ACCEPTED);
    let task: Task = res.json().await.unwrap();
    let row = format!(r#"data-task-id="{}""#, task.id);

    // Without the token: the page, but not the tasks (its socket lists them).
    let (status, html) = browse(&http, &server, "/tasks").await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"<table id="explorer""#), "{html}");
    assert!(!html.contains(&row), "{html}");
    assert!(html.contains("The tasks show once the page is connected."));
    // With it (`?token=` as the console is first opened), filtered by key.
    let linked = format!("/tasks?token={TOKEN}&key=explorer%3A%2A");
    let (status, html) = browse(&http, &server, &linked).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(&row), "{html}");
    assert!(
        html.contains(r#"value="explorer:*""#),
        "the filter is in the form: {html}"
    );
    let (_, html) = browse(&http, &server, &format!("/tasks?token={TOKEN}&key=other")).await;
    assert!(!html.contains(&row) && html.contains("No task matches these filters."));
    // What `list` refuses, the page says.
    let (_, html) = browse(&http, &server, &format!("/tasks?token={TOKEN}&status=done")).await;
    assert!(html.contains("status must be one of"), "{html}");

    // JSON clients get `list`'s page, with the token only.
    let res = http.get(server.at("/tasks")).send().await.unwrap();
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = http
        .get(server.at("/tasks?key=explorer:1"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status(), StatusCode::OK);
    let listed: app::ListPage = res.json().await.unwrap();
    assert_eq!(
        listed.tasks.iter().map(|t| t.id).collect::<Vec<_>>(),
        [task.id]
    );

    // A finished task's page lists its attempt.
    let path = format!("/tasks/{}", task.id);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let res = http
            .get(server.at(&path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap();
        if res.json::<Task>().await.unwrap().status == TaskStatus::Succeeded {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "task {} did not succeed",
            task.id
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let res = http
        .get(server.at(&path))
        .bearer_auth(TOKEN)
        .header(ACCEPT, HTML)
        .send()
        .await
        .unwrap();
    let (status, html) = page(res).await;
    assert_eq!(status, StatusCode::OK);
    assert!(html.contains(r#"<table id="attempts""#), "{html}");
    assert!(html.contains(r#"data-outcome="succeeded""#), "{html}");
}
