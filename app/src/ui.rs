//! The Leptos application: the HTML shell rendered on the server and the
//! component tree hydrated in the browser.

use leptos::prelude::*;
use leptos_meta::{MetaTags, Stylesheet, Title, provide_meta_context};
use leptos_router::{
    StaticSegment,
    components::{Route, Router, Routes},
};

use crate::protocol::builtin;

/// The whole document, rendered on the server.
pub fn shell(options: LeptosOptions) -> impl IntoView {
    view! {
        <!DOCTYPE html>
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The root component.
#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    view! {
        <Stylesheet id="leptos" href="/pkg/taskwire.css"/>
        <Title text="Taskwire"/>
        <Router>
            <main>
                <Routes fallback=|| "Page not found.".into_view()>
                    <Route path=StaticSegment("") view=Home/>
                </Routes>
            </main>
        </Router>
    }
}

/// The landing page: what Taskwire runs.
#[component]
fn Home() -> impl IntoView {
    view! {
        <h1>"Taskwire"</h1>
        <p>"Real-time task dispatcher. Built-in kinds:"</p>
        <ul class="kinds">
            {builtin::KINDS.iter().map(|k| view! { <li><code>{*k}</code></li> }).collect_view()}
        </ul>
    }
}
