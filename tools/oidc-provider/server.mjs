// A real OpenID Connect provider for the admin UI's tests (the certified `oidc-provider`
// package), configured from the environment. Development interactions only: any password
// signs in a configured user. Never run this in front of anything real.
//
//   OIDC_TEST_PORT                      port on 127.0.0.1 (the issuer is http://127.0.0.1:<port>)
//   OIDC_TEST_CLIENT_ID, OIDC_TEST_CLIENT_SECRET
//   OIDC_TEST_REDIRECT_URIS             comma-separated redirect URIs of that client
//   OIDC_TEST_POST_LOGOUT_REDIRECT_URIS comma-separated post-logout redirect URIs (optional)
//   OIDC_TEST_EXTRA_CLIENTS             JSON list of more clients in oidc-provider's metadata
//                                       form (optional; the tests use one for a wrong audience)
//   OIDC_TEST_USERS                     JSON {"<login>": {"email": ..., "roles": [...]}};
//                                       default: admin@example.com with the role sms-admin
//   OIDC_TEST_SESSION_TTL_S             provider session lifetime (default 3600)
//
// `node server.mjs` prints "oidc-provider listening on <issuer>" once it accepts requests.

import { randomBytes } from 'node:crypto';

import Provider from 'oidc-provider';

function required(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`${name} is required`);
    process.exit(2);
  }
  return value;
}

function list(name) {
  return (process.env[name] || '').split(',').map((s) => s.trim()).filter(Boolean);
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

const port = Number(required('OIDC_TEST_PORT'));
const issuer = `http://127.0.0.1:${port}`;

const clients = [
  {
    client_id: required('OIDC_TEST_CLIENT_ID'),
    client_secret: required('OIDC_TEST_CLIENT_SECRET'),
    redirect_uris: list('OIDC_TEST_REDIRECT_URIS'),
    post_logout_redirect_uris: list('OIDC_TEST_POST_LOGOUT_REDIRECT_URIS'),
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'client_secret_basic',
  },
  ...JSON.parse(process.env.OIDC_TEST_EXTRA_CLIENTS || '[]'),
];

const users = JSON.parse(
  process.env.OIDC_TEST_USERS
    || '{"admin@example.com": {"email": "admin@example.com", "roles": ["sms-admin"]}}',
);

// Pages without the default ones' web fonts: the test machines have no internet.
function page(title, body) {
  return `<!DOCTYPE html><html><head><meta charset="utf-8"><title>${escapeHtml(title)}</title>
<style>body{font-family:sans-serif;max-width:24rem;margin:3rem auto}button{margin:.3rem 0}</style>
</head><body><h1>${escapeHtml(title)}</h1>${body}</body></html>`;
}

const configuration = {
  clients,
  cookies: { keys: [randomBytes(32).toString('hex')] },
  pkce: { required: () => true },
  // Scope claims go into the ID token too (as Auth0 does), not only to /userinfo.
  conformIdTokenClaims: false,
  claims: {
    openid: ['sub', 'roles'],
    email: ['email', 'email_verified'],
    profile: ['name'],
  },
  features: {
    devInteractions: { enabled: true },
    rpInitiatedLogout: {
      enabled: true,
      async logoutSource(ctx, form) {
        ctx.body = page('Sign out', `${form}
<button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
<button type="submit" form="op.logoutForm">No, stay signed in</button>`);
      },
      async postLogoutSuccessSource(ctx) {
        ctx.body = page('Signed out', '<p>You are signed out of the provider.</p>');
      },
    },
  },
  ttl: { Session: Number(process.env.OIDC_TEST_SESSION_TTL_S || 3600) },
  async renderError(ctx, out) {
    ctx.type = 'html';
    const rows = Object.entries(out).map(([k, v]) => `<p><b>${escapeHtml(k)}</b>: ${escapeHtml(v)}</p>`);
    ctx.body = page('Provider error', rows.join(''));
  },
  async findAccount(_ctx, id) {
    const user = users[id];
    if (!user) {
      return undefined;
    }
    return {
      accountId: id,
      async claims() {
        return {
          sub: id,
          email: user.email ?? id,
          email_verified: user.email_verified ?? true,
          name: user.name ?? id,
          roles: user.roles ?? [],
        };
      },
    };
  },
};

const provider = new Provider(issuer, configuration);
provider.on('server_error', (_ctx, error) => console.error('server_error', error));

const server = provider.listen(port, '127.0.0.1', () => {
  console.log(`oidc-provider listening on ${issuer}`);
});

for (const signal of ['SIGTERM', 'SIGINT']) {
  process.on(signal, () => server.close(() => process.exit(0)));
}
