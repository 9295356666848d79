// End-to-end OAuth client for mcpguard, built on the official MCP TypeScript
// SDK (@modelcontextprotocol/sdk). It plays both the MCP client and a
// headless "browser": the SDK runs discovery, registration (DCR or a Client
// ID Metadata Document), PKCE and the token exchange; this script's
// redirectToAuthorization submits mcpguard's login and consent forms and
// reads the code from the final redirect.
//
// Usage:
//   node oauth-client.mjs MCP_URL dcr
//   node oauth-client.mjs MCP_URL cimd CLIENT_METADATA_URL
// Environment:
//   MCP_USERNAME, MCP_PASSWORD  the person who signs in (required)
//   MCP_REDIRECT_URI            default http://127.0.0.1:53682/callback
//                               (nothing listens there: the redirect is
//                               intercepted)
//   MCP_TOTP_SECRET             base32 TOTP secret, when the user has MFA
//
// Prints one JSON line of results on stdout and exits 0; on any failure it
// prints a message on stderr and exits 1. It never prints tokens, codes,
// verifiers or the password.

import { createHmac, randomBytes } from 'node:crypto';
import { Client } from '@modelcontextprotocol/sdk/client/index.js';
import { StreamableHTTPClientTransport, StreamableHTTPError } from '@modelcontextprotocol/sdk/client/streamableHttp.js';
import { UnauthorizedError } from '@modelcontextprotocol/sdk/client/auth.js';

const [mcpURL, mode = 'dcr', metadataURL] = process.argv.slice(2);
const username = process.env.MCP_USERNAME;
const password = process.env.MCP_PASSWORD;
const redirectURI = process.env.MCP_REDIRECT_URI || 'http://127.0.0.1:53682/callback';
const totpSecret = process.env.MCP_TOTP_SECRET || '';

// Every secret seen, so that nothing printed can contain one.
const secrets = new Set();
function secret(v) {
    if (typeof v === 'string' && v.length >= 8) secrets.add(v);
    return v;
}
secret(password);
secret(totpSecret);

function fail(msg) {
    let m = String(msg);
    for (const s of secrets) m = m.split(s).join('[redacted]');
    process.stderr.write(`oauth-client: FAIL: ${m}\n`);
    process.exit(1);
}

function step(msg) {
    process.stderr.write(`oauth-client: ${msg}\n`);
}

// snippet shortens a page or message for an error report.
function snippet(s, n = 300) {
    s = String(s ?? '').replace(/\s+/g, ' ').trim();
    return s.length > n ? s.slice(0, n) + '…' : s;
}

// ---------------------------------------------------------------- browser

const entities = { amp: '&', lt: '<', gt: '>', quot: '"', apos: "'", '#39': "'", nbsp: ' ' };
function decodeEntities(s) {
    return s.replace(/&(#x[0-9a-f]+|#[0-9]+|[a-z]+|#39);/gi, (m, e) => {
        if (e[0] === '#') {
            const code = e[1] === 'x' || e[1] === 'X' ? parseInt(e.slice(2), 16) : parseInt(e.slice(1), 10);
            return Number.isFinite(code) ? String.fromCodePoint(code) : m;
        }
        return entities[e.toLowerCase()] ?? m;
    });
}

function attrs(tag) {
    const out = {};
    const re = /([^\s"'<>\/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
    // Skip the element name.
    const body = tag.replace(/^<\s*[a-z0-9]+/i, '').replace(/\/?>$/, '');
    let m;
    while ((m = re.exec(body))) {
        out[m[1].toLowerCase()] = decodeEntities(m[2] ?? m[3] ?? m[4] ?? '');
    }
    return out;
}

// parseForms finds every <form> with its fields and submit buttons.
function parseForms(html) {
    const forms = [];
    const formRE = /<form\b[^>]*>([\s\S]*?)<\/form>/gi;
    let m;
    while ((m = formRE.exec(html))) {
        const open = m[0].match(/^<form\b[^>]*>/i)[0];
        const a = attrs(open);
        const form = { action: a.action ?? '', method: (a.method || 'GET').toUpperCase(), fields: [], buttons: [] };
        const ctlRE = /<(input|button|textarea|select)\b[^>]*>/gi;
        let c;
        while ((c = ctlRE.exec(m[1]))) {
            const kind = c[1].toLowerCase();
            const ca = attrs(c[0]);
            if (kind === 'button') {
                const type = (ca.type || 'submit').toLowerCase();
                if (type === 'submit') form.buttons.push({ name: ca.name, value: ca.value ?? '', label: '' });
                continue;
            }
            if (kind === 'input') {
                const type = (ca.type || 'text').toLowerCase();
                if (type === 'submit' || type === 'image') {
                    form.buttons.push({ name: ca.name, value: ca.value ?? '' });
                    continue;
                }
                if ((type === 'checkbox' || type === 'radio') && !('checked' in ca)) continue;
                if (type === 'button' || type === 'reset' || type === 'file') continue;
                if (ca.name) form.fields.push({ name: ca.name, value: ca.value ?? '', type });
                continue;
            }
            if (ca.name) form.fields.push({ name: ca.name, value: '', type: kind });
        }
        // Button labels, for buttons without a value.
        const btnRE = /<button\b[^>]*>([\s\S]*?)<\/button>/gi;
        let b, i = 0;
        while ((b = btnRE.exec(m[1]))) {
            const type = (attrs(b[0].match(/^<button\b[^>]*>/i)[0]).type || 'submit').toLowerCase();
            if (type !== 'submit') continue;
            if (form.buttons[i]) form.buttons[i].label = b[1].replace(/<[^>]*>/g, '').trim();
            i++;
        }
        forms.push(form);
    }
    return forms;
}

function totp(base32, now = Date.now()) {
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
    let bits = '';
    for (const ch of base32.toUpperCase().replace(/=+$/, '')) {
        const v = alphabet.indexOf(ch);
        if (v < 0) throw new Error('bad base32 in MCP_TOTP_SECRET');
        bits += v.toString(2).padStart(5, '0');
    }
    const key = Buffer.alloc(Math.floor(bits.length / 8));
    for (let i = 0; i < key.length; i++) key[i] = parseInt(bits.slice(i * 8, i * 8 + 8), 2);
    const counter = Buffer.alloc(8);
    counter.writeBigUInt64BE(BigInt(Math.floor(now / 1000 / 30)));
    const h = createHmac('sha1', key).update(counter).digest();
    const off = h[h.length - 1] & 0xf;
    const n = (h.readUInt32BE(off) & 0x7fffffff) % 1_000_000;
    return String(n).padStart(6, '0');
}

// Browser is one user agent: a cookie jar and a form-filling loop.
class Browser {
    constructor() {
        this.cookies = new Map();
    }

    cookieHeader() {
        return [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    }

    keepCookies(res) {
        for (const c of res.headers.getSetCookie?.() ?? []) {
            const [pair, ...attrParts] = c.split(';');
            const eq = pair.indexOf('=');
            if (eq < 1) continue;
            const name = pair.slice(0, eq).trim();
            const value = pair.slice(eq + 1).trim();
            const expired = attrParts.some(p => {
                const [k, v = ''] = p.split('=').map(x => x.trim());
                if (k.toLowerCase() === 'max-age') return Number(v) <= 0;
                if (k.toLowerCase() === 'expires') return Date.parse(v) < Date.now();
                return false;
            });
            if (expired || value === '') this.cookies.delete(name);
            else this.cookies.set(name, secret(value));
        }
    }

    // authorize follows an authorization URL through the server's pages until
    // it redirects to redirectPrefix, and returns that redirect's URL and the
    // kinds of pages it went through.
    async authorize(authURL, redirectPrefix) {
        let url = new URL(authURL);
        let method = 'GET';
        let body;
        const pages = [];
        for (let hop = 0; hop < 15; hop++) {
            const headers = { accept: 'text/html' };
            if (this.cookies.size) headers.cookie = this.cookieHeader();
            if (body) headers['content-type'] = 'application/x-www-form-urlencoded';
            const res = await fetch(url, { method, headers, body, redirect: 'manual' });
            this.keepCookies(res);
            if (res.status >= 300 && res.status < 400) {
                await res.body?.cancel();
                const loc = res.headers.get('location');
                if (!loc) throw new Error(`${method} ${url.pathname}: ${res.status} without Location`);
                const next = new URL(loc, url);
                if (next.href.startsWith(redirectPrefix)) return { redirect: next, pages };
                url = next;
                method = 'GET';
                body = undefined;
                continue;
            }
            const html = await res.text();
            if (res.status !== 200) {
                throw new Error(`${method} ${url.pathname} -> HTTP ${res.status}: ${snippet(html.replace(/<[^>]*>/g, ' '))}`);
            }
            const forms = parseForms(html);
            const params = new URLSearchParams();
            let form;
            let kind;
            if ((form = forms.find(f => f.fields.some(x => x.type === 'password')))) {
                kind = 'login';
                let userSet = false;
                for (const f of form.fields) {
                    if (f.type === 'password') params.append(f.name, password);
                    else if (!userSet && /user|login|email|name/i.test(f.name) && f.type !== 'hidden') {
                        params.append(f.name, username);
                        userSet = true;
                    } else params.append(f.name, f.value);
                }
                if (!userSet) throw new Error(`login form at ${url.pathname} has no username field`);
            } else if ((form = forms.find(f => f.fields.some(x => /^(code|otp|totp)$/i.test(x.name) && x.type !== 'hidden')))) {
                kind = 'mfa';
                if (!totpSecret) throw new Error(`the server asks for an MFA code at ${url.pathname}, but MCP_TOTP_SECRET is not set`);
                for (const f of form.fields) {
                    if (/^(code|otp|totp)$/i.test(f.name) && f.type !== 'hidden') params.append(f.name, secret(totp(totpSecret)));
                    else params.append(f.name, f.value);
                }
            } else {
                const approve = b => /allow|approve|accept|authori[sz]e|consent|grant/i.test(`${b.value} ${b.label ?? ''}`) && !/deny|reject|cancel/i.test(`${b.value}`);
                form = forms.find(f => f.buttons.some(approve));
                if (!form) {
                    const title = (html.match(/<title>([\s\S]*?)<\/title>/i) || [])[1];
                    throw new Error(`unrecognized page at ${url.pathname} (title ${JSON.stringify(title)}; ${forms.length} forms): ${snippet(html.replace(/<[^>]*>/g, ' '))}`);
                }
                kind = 'consent';
                for (const f of form.fields) params.append(f.name, f.value);
                const btn = form.buttons.find(approve);
                if (btn.name) params.append(btn.name, btn.value);
            }
            if (kind !== 'consent' && pages.at(-1) === kind) {
                // The same form again: the server refused what was submitted.
                throw new Error(`${kind} refused at ${url.pathname}: ${snippet(html.replace(/<[^>]*>/g, ' '))}`);
            }
            pages.push(kind);
            url = new URL(form.action || url.href, url);
            method = form.method === 'POST' ? 'POST' : 'GET';
            if (method === 'POST') {
                body = params.toString();
            } else {
                for (const [k, v] of params) url.searchParams.set(k, v);
                body = undefined;
            }
        }
        throw new Error('too many pages or redirects during authorization');
    }
}

// ---------------------------------------------------------------- provider

class MemoryProvider {
    constructor(browser) {
        this.browser = browser;
        this._client = undefined;
        this._tokens = undefined;
        this._verifier = undefined;
        this._state = undefined;
        this.code = undefined; // the last authorization's code, not yet exchanged
        this.authorizations = []; // what each redirectToAuthorization saw (no secrets)
        this.discovery = undefined;
        this.invalidated = [];
        if (mode === 'cimd') this.clientMetadataUrl = metadataURL;
    }

    get redirectUrl() {
        return redirectURI;
    }

    get clientMetadata() {
        return {
            client_name: 'mcpguard e2e (TypeScript SDK)',
            redirect_uris: [redirectURI],
            grant_types: ['authorization_code', 'refresh_token'],
            response_types: ['code'],
            token_endpoint_auth_method: 'none'
        };
    }

    state() {
        this._state = randomBytes(16).toString('base64url');
        return this._state;
    }

    clientInformation() {
        return this._client;
    }

    saveClientInformation(info) {
        secret(info.client_secret);
        this._client = info;
    }

    tokens() {
        return this._tokens;
    }

    saveTokens(tokens) {
        secret(tokens.access_token);
        secret(tokens.refresh_token);
        this._tokens = tokens;
    }

    saveCodeVerifier(v) {
        this._verifier = secret(v);
    }

    codeVerifier() {
        if (!this._verifier) throw new Error('no code verifier saved');
        return this._verifier;
    }

    saveDiscoveryState(state) {
        this.discovery = state;
    }

    invalidateCredentials(scope) {
        this.invalidated.push(scope);
        if (scope === 'all' || scope === 'client') this._client = undefined;
        if (scope === 'all' || scope === 'tokens') this._tokens = undefined;
        if (scope === 'all' || scope === 'verifier') this._verifier = undefined;
    }

    async redirectToAuthorization(authorizationUrl) {
        const u = new URL(authorizationUrl);
        const rec = {
            scope: u.searchParams.get('scope'),
            resource: u.searchParams.get('resource'),
            clientIdIsURL: /^https:\/\//.test(u.searchParams.get('client_id') || ''),
            pkce: u.searchParams.get('code_challenge_method')
        };
        step(`authorizing (scope ${JSON.stringify(rec.scope)})`);
        const { redirect, pages } = await this.browser.authorize(u, redirectURI);
        rec.pages = pages;
        const q = redirect.searchParams;
        if (q.get('error')) {
            throw new Error(`authorization refused: error=${q.get('error')} ${q.get('error_description') ?? ''}`);
        }
        if (q.get('state') !== this._state) throw new Error('authorization response state does not match the request');
        const iss = q.get('iss');
        rec.iss = iss !== null;
        const expectedIssuer = this.discovery?.authorizationServerMetadata?.issuer;
        if (iss !== null && expectedIssuer && iss !== expectedIssuer) {
            throw new Error(`authorization response iss ${iss} is not the issuer ${expectedIssuer} (RFC 9207)`);
        }
        const code = q.get('code');
        if (!code) throw new Error('authorization response has no code');
        this.code = secret(code);
        this.authorizations.push(rec);
    }

    takeCode() {
        const c = this.code;
        this.code = undefined;
        if (!c) throw new Error('no authorization code was captured');
        return c;
    }
}

// ---------------------------------------------------------------- flow

function textOf(result) {
    return (result?.content ?? [])
        .filter(c => c.type === 'text')
        .map(c => c.text)
        .join('\n');
}

function mustSucceed(name, result) {
    const t = textOf(result);
    if (result?.isError || /^ACCESS DENIED/.test(t)) throw new Error(`${name} failed: ${snippet(t)}`);
    return snippet(t, 200);
}

async function newClient(provider) {
    const transport = new StreamableHTTPClientTransport(new URL(mcpURL), { authProvider: provider });
    const client = new Client({ name: 'mcpguard-e2e-ts', version: '1.0.0' });
    return { transport, client };
}

async function tokenRequest(tokenEndpoint, params) {
    const res = await fetch(tokenEndpoint, {
        method: 'POST',
        headers: { 'content-type': 'application/x-www-form-urlencoded', accept: 'application/json' },
        body: new URLSearchParams(params).toString()
    });
    let json = {};
    const text = await res.text();
    try {
        json = JSON.parse(text);
    } catch {
        json = { raw: snippet(text) };
    }
    if (json.access_token) secret(json.access_token);
    if (json.refresh_token) secret(json.refresh_token);
    return { status: res.status, json };
}

async function main() {
    if (!mcpURL || !['dcr', 'cimd'].includes(mode) || (mode === 'cimd' && !metadataURL)) {
        fail('usage: node oauth-client.mjs MCP_URL dcr|cimd [CLIENT_METADATA_URL]');
    }
    if (!username || !password) fail('set MCP_USERNAME and MCP_PASSWORD');

    const out = { mode };
    const provider = new MemoryProvider(new Browser());

    // 1. Unauthenticated connect: 401 → discovery → registration →
    //    redirectToAuthorization (login + consent) → UnauthorizedError.
    step('connecting without a token');
    let { transport, client } = await newClient(provider);
    try {
        await client.connect(transport);
        throw new Error('connect succeeded without authorization');
    } catch (e) {
        if (!(e instanceof UnauthorizedError)) throw e;
    }
    const reg = provider.clientInformation();
    if (!reg?.client_id) throw new Error('no client information after the first authorization');
    out.clientIdIsURL = reg.client_id === metadataURL;
    if (mode === 'cimd' && !out.clientIdIsURL) throw new Error('cimd mode did not use the metadata URL as client_id (fell back to DCR?)');
    if (mode === 'dcr' && /^https?:/.test(reg.client_id)) throw new Error('dcr mode got a URL client_id');
    const asMeta = provider.discovery?.authorizationServerMetadata;
    out.issuer = asMeta?.issuer;
    out.resource = provider.discovery?.resourceMetadata?.resource;
    await transport.finishAuth(provider.takeCode());
    const first = provider.tokens();
    out.firstScope = first?.scope ?? null;
    out.firstHasRefresh = !!first?.refresh_token;

    // 2. Connected with the token: tools/list and allowed calls.
    step('connecting with the token');
    ({ transport, client } = await newClient(provider));
    await client.connect(transport);
    const tools = await client.listTools();
    out.tools = tools.tools.map(t => t.name).sort();
    out.list_tables = mustSucceed('list_tables', await client.callTool({ name: 'list_tables', arguments: {} }));
    out.execute_sql = mustSucceed(
        'execute_sql',
        await client.callTool({ name: 'execute_sql', arguments: { sql: 'CREATE TABLE IF NOT EXISTS oauth_e2e (x INTEGER)' } })
    );

    // 3. delete_users needs mcp:admin: 403 insufficient_scope → step-up.
    step('calling delete_users (needs step-up)');
    const adminCall = () => client.callTool({ name: 'delete_users', arguments: { ids: [999999] } });
    const authsBefore = provider.authorizations.length;
    let res;
    try {
        res = await adminCall();
        out.stepUp = 'sdk-transparent';
    } catch (e) {
        if (e instanceof UnauthorizedError && provider.code) {
            // The SDK re-authorized with the challenged scope and handed us
            // the redirect; the application finishes it and retries.
            out.stepUp = 'sdk-redirect';
            await transport.finishAuth(provider.takeCode());
            res = await adminCall();
        } else if (e instanceof StreamableHTTPError && e.code === 403) {
            // SDK 1.x: with a refresh token in hand, auth() refreshes instead
            // of re-authorizing (a refresh cannot widen scope), the retry gets
            // the same 403 and the SDK gives up ("403 after trying upscoping",
            // typescript-sdk#2255). Drop the refresh token, as an application
            // would, and let the SDK re-authorize on a fresh transport.
            out.stepUp = 'sdk-refresh-dead-end-then-redirect';
            out.stepUpSdkError = snippet(e.message, 120);
            const { refresh_token, ...rest } = provider.tokens();
            provider.saveTokens(rest);
            ({ transport, client } = await newClient(provider));
            await client.connect(transport);
            try {
                res = await adminCall();
                throw new Error('delete_users succeeded without a new authorization');
            } catch (e2) {
                if (!(e2 instanceof UnauthorizedError && provider.code)) throw e2;
            }
            await transport.finishAuth(provider.takeCode());
            res = await adminCall();
        } else {
            throw e;
        }
    }
    out.adminCall = mustSucceed('delete_users', res);
    out.authorizations = provider.authorizations;
    if (provider.authorizations.length !== authsBefore + 1) {
        throw new Error(`step-up made ${provider.authorizations.length - authsBefore} authorizations, want 1`);
    }
    const stepped = provider.tokens();
    out.stepUpScope = stepped?.scope ?? null;
    await client.close();

    // 4. Refresh token rotation and reuse detection, straight at the token
    //    endpoint.
    step('refresh rotation and replay');
    const tokenEndpoint = asMeta?.token_endpoint;
    if (!tokenEndpoint) throw new Error('no token_endpoint in the authorization server metadata');
    const r0 = stepped?.refresh_token;
    if (!r0) throw new Error('the step-up token response has no refresh_token');
    const base = { grant_type: 'refresh_token', client_id: reg.client_id };
    if (out.resource) base.resource = out.resource;
    const ok = await tokenRequest(tokenEndpoint, { ...base, refresh_token: r0 });
    if (ok.status !== 200 || !ok.json.access_token || !ok.json.refresh_token) {
        throw new Error(`refresh: HTTP ${ok.status} ${JSON.stringify(ok.json)}`);
    }
    if (ok.json.refresh_token === r0) throw new Error('refresh did not rotate the refresh token');
    out.refresh = 'ok';
    out.refreshedScope = ok.json.scope ?? null;
    // The refreshed access token works.
    const init = await fetch(mcpURL, {
        method: 'POST',
        headers: {
            authorization: `Bearer ${ok.json.access_token}`,
            'content-type': 'application/json',
            accept: 'application/json, text/event-stream'
        },
        body: JSON.stringify({
            jsonrpc: '2.0',
            id: 1,
            method: 'initialize',
            params: { protocolVersion: '2025-06-18', capabilities: {}, clientInfo: { name: 'refresh-check', version: '1' } }
        })
    });
    await init.body?.cancel();
    out.refreshedTokenStatus = init.status;
    if (init.status !== 200) throw new Error(`refreshed access token: initialize got HTTP ${init.status}`);

    const replay = await tokenRequest(tokenEndpoint, { ...base, refresh_token: r0 });
    out.replayStatus = replay.status;
    out.replay = replay.json.error ?? null;
    if (replay.status !== 400 || replay.json.error !== 'invalid_grant') {
        throw new Error(`replayed refresh token: HTTP ${replay.status} ${JSON.stringify(replay.json)}, want 400 invalid_grant`);
    }
    const after = await tokenRequest(tokenEndpoint, { ...base, refresh_token: ok.json.refresh_token });
    out.familyRevoked = after.status === 400 && after.json.error === 'invalid_grant';
    if (!out.familyRevoked) {
        throw new Error(`newest refresh token after a replay: HTTP ${after.status} ${JSON.stringify(after.json)}, want 400 invalid_grant`);
    }

    const line = JSON.stringify(out);
    for (const s of secrets) if (line.includes(s)) fail('internal error: a secret would have been printed');
    process.stdout.write(line + '\n');
}

const timer = setTimeout(() => fail('timed out after 80s'), 80_000);
timer.unref();
main().then(
    () => process.exit(0),
    e => fail(`${e?.stack ?? e}${e?.cause ? `\ncause: ${e.cause}` : ''}`)
);
