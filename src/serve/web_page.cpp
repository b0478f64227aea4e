#include "web_page.h"

namespace convnext::serve {

namespace {

// Model names are [A-Za-z0-9._-] (checked at start-up), so they go into the page as they are.
constexpr const char* kHead = R"(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>convnext serve</title>
<style>
  body { font: 16px/1.4 system-ui, sans-serif; margin: 0; background: #f5f6f8; color: #1d2330; }
  main { max-width: 720px; margin: 2rem auto; padding: 0 1rem; }
  h1 { font-size: 1.4rem; margin: 0 0 1rem; }
  #drop { border: 2px dashed #8a94a6; border-radius: 10px; background: #fff; padding: 1.5rem; text-align: center;
          cursor: pointer; }
  #drop.over { border-color: #2f6fed; background: #eef3ff; }
  #preview { max-width: 100%; max-height: 260px; margin-top: 1rem; display: none; border-radius: 6px; }
  select { font: inherit; margin-left: .5rem; }
  .row { display: grid; grid-template-columns: 12rem 1fr 4.5rem; align-items: center; gap: .6rem; margin: .35rem 0; }
  .label { overflow: hidden; text-overflow: ellipsis; white-space: nowrap; }
  .track { background: #e3e7ee; border-radius: 4px; height: 1.1rem; }
  .bar { background: #2f6fed; height: 100%; border-radius: 4px; }
  .score { text-align: right; font-variant-numeric: tabular-nums; }
  #status { color: #5a6478; margin: 1rem 0 .5rem; min-height: 1.4em; }
  #status.error { color: #b42318; }
</style>
</head>
<body>
<main>
<h1>ConvNeXt image classification</h1>
<p><label>Model<select id="model">)";

constexpr const char* kTail = R"(</select></label></p>
<div id="drop" tabindex="0">Drop an image here, or click to choose one
  <input id="file" type="file" accept="image/*" hidden>
  <div><img id="preview" alt="the image sent"></div>
</div>
<div id="status"></div>
<div id="results"></div>
</main>
<script>
const drop = document.getElementById('drop'), file = document.getElementById('file');
const statusLine = document.getElementById('status'), results = document.getElementById('results');
drop.addEventListener('click', () => file.click());
drop.addEventListener('keydown', e => { if (e.key === 'Enter' || e.key === ' ') file.click(); });
drop.addEventListener('dragover', e => { e.preventDefault(); drop.classList.add('over'); });
drop.addEventListener('dragleave', () => drop.classList.remove('over'));
drop.addEventListener('drop', e => {
  e.preventDefault(); drop.classList.remove('over');
  if (e.dataTransfer.files.length) classify(e.dataTransfer.files[0]);
});
file.addEventListener('change', () => { if (file.files.length) classify(file.files[0]); });

function show(text, isError) { statusLine.textContent = text; statusLine.className = isError ? 'error' : ''; }

async function classify(f) {
  const preview = document.getElementById('preview');
  preview.src = URL.createObjectURL(f);
  preview.style.display = 'inline';
  results.textContent = '';
  show('classifying ' + f.name + ' …');
  const model = document.getElementById('model').value;
  const t0 = performance.now();
  try {
    const r = await fetch('/models/' + encodeURIComponent(model), {
      method: 'POST', headers: {'Content-Type': f.type || 'application/octet-stream'}, body: f});
    const body = await r.json();
    const ms = performance.now() - t0;
    if (!r.ok) { show(body.error || ('HTTP ' + r.status), true); return; }
    show(f.name + ': ' + ms.toFixed(0) + ' ms');
    for (const p of body) {
      const row = document.createElement('div'); row.className = 'row';
      const label = document.createElement('div'); label.className = 'label'; label.textContent = p.label;
      label.title = p.label;
      const track = document.createElement('div'); track.className = 'track';
      const bar = document.createElement('div'); bar.className = 'bar';
      bar.style.width = (100 * Math.max(0, Math.min(1, p.score))).toFixed(1) + '%';
      track.appendChild(bar);
      const score = document.createElement('div'); score.className = 'score'; score.textContent = p.score.toFixed(3);
      row.append(label, track, score);
      results.appendChild(row);
    }
  } catch (e) { show(String(e), true); }
}
</script>
</body>
</html>
)";

}  // namespace

std::string web_page(const std::vector<std::string>& model_names) {
  std::string page = kHead;
  for (const std::string& n : model_names) page += "<option value=\"" + n + "\">" + n + "</option>";
  return page + kTail;
}

}  // namespace convnext::serve
