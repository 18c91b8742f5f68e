// The login form: user name and password give a token (GET /token with HTTP Basic), kept for this tab only.
import {login} from '../api.js';
import {h} from '../dom.js';

export function loginView(main, {message, onLogin}) {
  const username = h('input', {id: 'login-username', name: 'username', type: 'text', autocomplete: 'username',
    required: true, autocapitalize: 'none', spellcheck: 'false'});
  const password = h('input', {id: 'login-password', name: 'password', type: 'password',
    autocomplete: 'current-password', required: true});
  const feedback = h('p', {class: 'form-message', role: 'alert', id: 'login-message'});
  const submit = h('button', {type: 'submit', class: 'primary', text: 'Log in'});
  if (message) feedback.textContent = message;
  const form = h('form', {class: 'login', 'aria-labelledby': 'login-title', 'aria-describedby': 'login-message'},
    h('h1', {id: 'login-title', text: 'Log in to CC-Agency'}),
    h('label', {for: 'login-username', text: 'User name'}), username,
    h('label', {for: 'login-password', text: 'Password'}), password,
    submit, feedback);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    submit.disabled = true;
    feedback.classList.remove('error');
    feedback.textContent = 'Logging in…';
    try {
      await login(username.value, password.value);
      password.value = '';
      onLogin();
    } catch (error) {
      feedback.classList.add('error');
      feedback.textContent = error.status === 401 ? 'Wrong user name or password.'
        : 'Login failed: ' + error.message;
      submit.disabled = false;
      password.select();
      password.focus();
    }
  });
  main.append(form);
  username.focus();
  return {refresh() {}};
}
